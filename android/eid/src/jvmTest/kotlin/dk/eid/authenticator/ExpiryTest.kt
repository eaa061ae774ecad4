package dk.eid.authenticator

import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import dk.eid.authenticator.ffi.EidException

/**
 * Expiry against a real server whose requests live only [LIFETIME_SECS]
 * seconds (`EID_SERVER_REQUEST_LIFETIME_SECS`).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ExpiryTest {
    private companion object {
        const val LIFETIME_SECS = 4
    }

    private lateinit var server: TestServer
    private lateinit var apiKey: String

    @BeforeAll
    fun startServer() {
        server = TestServer.start(requestLifetimeSecs = LIFETIME_SECS)
        apiKey = server.cli.registerProvider("Kotlin Expiry Shop")
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    @Test
    fun `an expired request cannot be approved and leaves the list`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val requestId = server.cli.createRequest(apiKey, phone.userId, "Pay 10 DKK to Expiry Shop")
                val view = eid.refresh().single()
                assertEquals(requestId, view.requestId)
                assertTrue(eid.timeLeft(view) <= LIFETIME_SECS.seconds)

                // Unlock in time, then let the request run out before the swipe.
                val token = eid.unlock(view, PIN)

                // The countdown ticks down to zero and then drops the request.
                val ticks = eid.countdown(view, tick = 500.milliseconds).toList()
                assertEquals(Duration.ZERO, ticks.last())
                assertTrue(ticks.size >= 2, "ticks: $ticks")
                assertTrue(ticks.zipWithNext().all { (a, b) -> b <= a }, "not decreasing: $ticks")
                assertTrue(eid.requests.value.isEmpty(), "expired requests leave the list")
                delay(500) // margin past the server's deadline

                token.use { assertFailsWith<EidException.Expired> { eid.approve(it, swipeConfirmed = true) } }
                assertFailsWith<EidException.Expired> { eid.unlock(view, PIN) }
                assertTrue(eid.refresh().none { it.requestId == requestId })
                assertEquals("expired", server.cli.status(apiKey, requestId))
            }
        }
    }
}
