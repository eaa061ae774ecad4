package dk.eid.authenticator

import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import dk.eid.authenticator.ffi.AuthenticatorState
import dk.eid.authenticator.ffi.Action
import dk.eid.authenticator.ffi.App
import dk.eid.authenticator.ffi.EidException
import dk.eid.authenticator.ffi.IdKind
import dk.eid.authenticator.ffi.KeyStoreException
import dk.eid.authenticator.ffi.Language
import dk.eid.authenticator.ffi.Outcome
import dk.eid.authenticator.ffi.PinRefusal
import dk.eid.authenticator.ffi.RequestKind
import dk.eid.authenticator.ffi.ServerErrorCode
import dk.eid.authenticator.ffi.WarningKind

/**
 * The Kotlin shell against the host-built Rust library and a real eid-server:
 * activation, reopening, the request list, approve, deny, wrong PIN, lockout
 * and keystore failures.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EidAppTest {
    private lateinit var server: TestServer
    private lateinit var apiKey: String
    private val providerName = "Kotlin Test Bank"

    @BeforeAll
    fun startServer() {
        server = TestServer.start()
        apiKey = server.cli.registerProvider(providerName)
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    private fun phoneTest(body: suspend CoroutineScope.(Phone) -> Unit) = runBlocking {
        Phone(server).use { body(it) }
    }

    private fun newRequest(phone: Phone, text: String = "Log in to Kotlin Bank, ref ${System.nanoTime()}") =
        text to server.cli.createRequest(apiKey, phone.userId, text)

    @Test
    fun `wrong activation code is rejected and the right one activates`() = phoneTest { phone ->
        phone.open().use { eid ->
            val code = server.cli.activationCode(phone.identityId)
            val e = assertFailsWith<EidException.Rejected> {
                eid.activate(phone.userId, wrongActivationCode(code), PIN)
            }
            assertEquals(ServerErrorCode.INVALID_ACTIVATION_CODE, e.code)
            assertTrue(eid.authenticators.value.isEmpty())

            val authenticator = eid.activate(phone.userId, code, PIN)
            assertEquals(phone.userId, authenticator.userId)
            assertEquals(AuthenticatorState.ACTIVE, authenticator.state)
            assertEquals(listOf(authenticator), eid.authenticators.value)
            assertTrue(phone.keyStore.calls.getOrDefault("createKey", 0) >= 1, "keys are made in the KeyStore")
            assertTrue(phone.keyStore.calls.getOrDefault("hardwareSecret", 0) >= 1, "the PIN key is bound to the KeyStore")
        }
    }

    @Test
    fun `an approval right after the request appears is refused with TooFast, then accepted`() = runBlocking {
        // The core's default minimum read time (1500 ms).
        Phone(server, minReadMs = null).use { phone ->
            phone.activated().use { eid ->
                val (_, requestId) = newRequest(phone)
                val view = eid.refresh().single { it.requestId == requestId }
                eid.unlock(view, PIN).use { token ->
                    val e = assertFailsWith<EidException.TooFast> { eid.approve(token, swipeConfirmed = true) }
                    assertTrue(e.waitMs in 1uL..1500uL, "wait ${e.waitMs}")
                    assertEquals("pending", server.cli.status(apiKey, requestId))
                    delay(e.waitMs.toLong() + 50)
                    // The same unlock: a TooFast refusal does not use it up.
                    eid.approve(token, swipeConfirmed = true)
                }
                assertEquals("approved", server.cli.status(apiKey, requestId))
            }
        }
    }

    @Test
    fun `a malformed id is refused as InvalidId naming its kind, not as an unknown request`() = phoneTest { phone ->
        // Ids come from the records the library returns; only the raw FFI
        // object takes one typed by hand.
        App.open(phone.config, phone.keyStore).use { core ->
            val e = assertFailsWith<EidException.InvalidId> { core.requestsFor("not-an-id", Language.ENGLISH) }
            assertEquals(IdKind.AUTHENTICATOR, e.what)
        }
    }

    @Test
    fun `PIN refused by the policy`() = phoneTest { phone ->
        phone.open().use { eid ->
            val e = assertFailsWith<EidException.PinRefused> {
                eid.activate(phone.userId, server.cli.activationCode(phone.identityId), "123456")
            }
            assertEquals(PinRefusal.SEQUENCE, e.kind)
        }
    }

    @Test
    fun `reopened phone keeps its authenticator and the request list flows`() = phoneTest { phone ->
        val authenticator = phone.activated().use { it.authenticators.value.single() }

        phone.open().use { eid ->
            assertEquals(listOf(authenticator), eid.authenticators.value, "the account survives close and open")
            assertTrue(eid.requests.value.isEmpty())

            val (text, requestId) = newRequest(phone)
            // A collector sees the list change when refresh() publishes it.
            val emitted = async { eid.requests.first { it.isNotEmpty() } }
            yield()
            val pulled = eid.refresh()
            val seen = withTimeout(10.seconds) { emitted.await() }
            assertEquals(pulled, seen)

            val view = seen.single()
            assertEquals(requestId, view.requestId)
            assertEquals(authenticator.authenticatorId, view.authenticatorId)
            assertEquals(phone.userId, view.userId)
            assertEquals(RequestKind.LOGIN, view.kind)
            assertEquals(providerName, view.providerName)
            assertEquals(text, view.referenceText)
            assertTrue(view.title.isNotBlank())
            assertEquals(WarningKind.ONLY_APPROVE_WHAT_YOU_STARTED, view.warnings.first().kind)
            assertTrue(view.warnings.first().text.isNotBlank())
            assertEquals(setOf(Action.APPROVE, Action.DENY, Action.REPORT_FRAUD), view.actions.toSet())
            val left = eid.timeLeft(view)
            assertTrue(left > 4.minutes && left <= 5.minutes, "time left $left")

            // Reloading without the network gives the same request.
            assertEquals(listOf(requestId), eid.reload().map { it.requestId })
        }
    }

    @Test
    fun `approve with PIN and swipe, and the relying party sees it`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            val view = eid.refresh().single { it.requestId == requestId }

            eid.unlock(view, PIN).use { token ->
                assertEquals(requestId, token.requestId())
                assertFailsWith<EidException.SwipeRequired> { eid.approve(token, swipeConfirmed = false) }
            }
            val receipt = eid.unlock(view, PIN).use { token -> eid.approve(token, swipeConfirmed = true) }
            assertEquals(Outcome.APPROVED, receipt.outcome)
            assertEquals(requestId, receipt.requestId)
            assertEquals(view.authenticatorId, receipt.authenticatorId)
            assertEquals(64, receipt.referenceTextSha256.length)

            assertEquals("approved", server.cli.status(apiKey, requestId))
            assertTrue(eid.requests.value.none { it.requestId == requestId }, "decided requests leave the list")
            assertTrue(eid.refresh().none { it.requestId == requestId })
        }
    }

    @Test
    fun `deny needs no PIN`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            val view = eid.refresh().single()
            val receipt = eid.deny(view)
            assertEquals(Outcome.DENIED, receipt.outcome)
            assertEquals("denied", server.cli.status(apiKey, requestId))
            assertTrue(eid.requests.value.isEmpty())
        }
    }

    @Test
    fun `blocking from the app needs no PIN and cancels the pending request`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            eid.refresh().single()
            eid.blockIdentity(eid.authenticators.value.single())
            assertEquals(AuthenticatorState.BLOCKED, eid.authenticators.value.single().state)
            assertTrue(eid.requests.value.isEmpty(), "a blocked account shows no requests")
            assertEquals("cancelled", server.cli.status(apiKey, requestId))
        }
    }

    @Test
    fun `wrong PIN counts down and leaves the request pending`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            val view = eid.refresh().single()

            val e = assertFailsWith<EidException.WrongPin> { eid.unlock(view, WRONG_PIN) }
            assertEquals(9u, e.attemptsLeft)
            assertEquals(0uL, e.retryAfterMs)
            assertNull(e.retryAfter)

            assertEquals("pending", server.cli.status(apiKey, requestId))
            assertEquals(listOf(requestId), eid.refresh().map { it.requestId })

            // The right PIN still works and resets the count.
            val receipt = eid.approve(view, PIN, swipeConfirmed = true)
            assertEquals(Outcome.APPROVED, receipt.outcome)
            assertEquals("approved", server.cli.status(apiKey, requestId))
        }
    }

    @Test
    fun `three wrong PINs lock even the right PIN out`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            val view = eid.refresh().single()

            val tries = (1..3).map { assertFailsWith<EidException.WrongPin> { eid.unlock(view, WRONG_PIN) } }
            assertEquals(listOf(9u, 8u, 7u), tries.map { it.attemptsLeft })
            assertEquals(1.minutes, tries.last().retryAfter)

            val locked = assertFailsWith<EidException.LockedOut> { eid.unlock(view, PIN) }
            val wait = assertNotNull(locked.retryAfter)
            assertTrue(wait > 50.seconds && wait <= 1.minutes, "wait $wait")

            // Reopening the app does not lift the lock.
            eid.close()
            phone.open().use { again ->
                val view2 = again.requests.value.single()
                assertFailsWith<EidException.LockedOut> { again.unlock(view2, PIN) }
            }
            assertEquals("pending", server.cli.status(apiKey, requestId))
        }
    }

    @Test
    fun `an exception in the Kotlin KeyStore surfaces as EidException KeyStore`() = phoneTest { phone ->
        phone.activated().use { eid ->
            newRequest(phone)
            val view = eid.refresh().single()

            phone.keyStore.failWith = IllegalStateException("keystore boom")
            val unexpected = assertFailsWith<EidException.KeyStore> { eid.unlock(view, PIN) }
            assertContains(unexpected.message.orEmpty(), "boom")

            phone.keyStore.failWith = KeyStoreException.Failure("device keystore is unavailable")
            val declared = assertFailsWith<EidException.KeyStore> { eid.unlock(view, PIN) }
            assertContains(declared.message.orEmpty(), "unavailable")

            // Nothing was learnt about the PIN: those attempts did not count.
            phone.keyStore.failWith = null
            val e = assertFailsWith<EidException.WrongPin> { eid.unlock(view, WRONG_PIN) }
            assertEquals(9u, e.attemptsLeft)
            eid.approve(view, PIN, swipeConfirmed = true)
        }
    }

    @Test
    fun `offline refresh fails with Network and keeps the stored requests`() = phoneTest { phone ->
        val requestId = phone.activated().use { eid ->
            newRequest(phone).second.also { assertEquals(listOf(it), eid.refresh().map { v -> v.requestId }) }
        }
        val closedPort = java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
        val offline = phone.config.copy(serverUrl = "https://127.0.0.1:$closedPort")
        EidApp.open(offline, phone.keyStore).use { eid ->
            val e = assertFailsWith<EidException.Network> { eid.refresh() }
            assertTrue(e.isNetworkFailure)
            assertEquals(listOf(requestId), eid.requests.value.map { it.requestId })
        }
    }

    @Test
    fun `foreground puller pulls on app open and stops in the background`() = phoneTest { phone ->
        phone.activated().use { eid ->
            val (_, requestId) = newRequest(phone)
            assertTrue(eid.requests.value.isEmpty())
            val errors = mutableListOf<Throwable>()
            var pulls = 0
            val puller = ForegroundPuller(this, interval = 200.milliseconds, onError = { errors += it }) {
                pulls++
                eid.refresh()
            }

            puller.onForeground()
            val list = withTimeout(10.seconds) { eid.requests.first { it.isNotEmpty() } }
            assertEquals(requestId, list.single().requestId)

            // Keeps pulling while in the foreground...
            withTimeout(10.seconds) { while (pulls < 3) kotlinx.coroutines.delay(50) }
            puller.onBackground()
            assertTrue(!puller.isForeground)
            // ...and not at all in the background.
            val after = pulls
            kotlinx.coroutines.delay(600)
            assertEquals(after, pulls)
            assertTrue(errors.isEmpty(), "errors: $errors")
        }
    }
}
