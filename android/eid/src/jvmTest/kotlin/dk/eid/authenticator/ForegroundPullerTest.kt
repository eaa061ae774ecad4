package dk.eid.authenticator

import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Test
import dk.eid.authenticator.ffi.EidException

/** The puller on its own, with a fake pull (no server). */
class ForegroundPullerTest {
    @Test
    fun `one pull per app open without an interval`() = runBlocking {
        val pulls = AtomicInteger()
        val puller = ForegroundPuller(this) { pulls.incrementAndGet() }
        puller.onForeground()
        delay(100)
        assertEquals(1, pulls.get())
        puller.onBackground()
        puller.onForeground()
        delay(100)
        assertEquals(2, pulls.get(), "coming back to the foreground pulls again")
        puller.onBackground()
    }

    @Test
    fun `a pull in flight is not doubled by a second foreground event`() = runBlocking {
        val pulls = AtomicInteger()
        val release = CompletableDeferred<Unit>()
        val puller = ForegroundPuller(this) {
            pulls.incrementAndGet()
            release.await()
        }
        puller.onForeground()
        delay(50)
        puller.onForeground()
        delay(50)
        assertEquals(1, pulls.get())
        release.complete(Unit)
        puller.onBackground()
    }

    @Test
    fun `failed pulls are reported and pulling goes on`() = runBlocking {
        val errors = mutableListOf<Throwable>()
        val pulls = AtomicInteger()
        val puller = ForegroundPuller(this, interval = 20.milliseconds, onError = { errors += it }) {
            pulls.incrementAndGet()
            throw EidException.Network("offline")
        }
        puller.onForeground()
        withTimeout(5.seconds) { while (pulls.get() < 3) delay(10) }
        puller.onBackground()
        assertTrue(errors.size >= 2)
        assertTrue(errors.all { it is EidException.Network })
    }
}
