package dk.eid.authenticator

import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import dk.eid.authenticator.ffi.CallSignals
import dk.eid.authenticator.ffi.ContextProvider
import dk.eid.authenticator.ffi.EidException
import dk.eid.authenticator.ffi.RequestKind
import dk.eid.authenticator.ffi.SecurityEventKind
import dk.eid.authenticator.ffi.ServerErrorCode
import dk.eid.authenticator.ffi.Signal
import dk.eid.authenticator.ffi.WarningKind

/**
 * The call context in the Kotlin shell (docs/integration.md, "Calls and
 * screen sharing"): the platform rules, and a fake provider against the
 * host-built library and a real eid-server.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CallContextTest {
    private lateinit var server: TestServer
    private lateinit var apiKey: String

    private val onCall = CallSignals(call = Signal.ON, screenShared = Signal.OFF, remoteControl = Signal.UNKNOWN)

    @BeforeAll
    fun startServer() {
        server = TestServer.start()
        apiKey = server.cli.registerProvider("Kotlin Call Bank")
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    @Test
    fun `the audio mode tells a call, and an unreadable or unknown mode is unknown, not off`() {
        assertEquals(Signal.ON, CallSignalRules.call(CallSignalRules.MODE_IN_CALL))
        assertEquals(Signal.ON, CallSignalRules.call(CallSignalRules.MODE_IN_COMMUNICATION))
        assertEquals(Signal.ON, CallSignalRules.call(CallSignalRules.MODE_CALL_SCREENING))
        assertEquals(Signal.OFF, CallSignalRules.call(CallSignalRules.MODE_NORMAL))
        assertEquals(Signal.OFF, CallSignalRules.call(CallSignalRules.MODE_RINGTONE))
        assertEquals(Signal.UNKNOWN, CallSignalRules.call(-2))
        assertEquals(Signal.UNKNOWN, CallSignalRules.call(42))
        assertEquals(Signal.UNKNOWN, CallSignalRules.call(null))
    }

    @Test
    fun `an accessibility service that is not from the system means remote control`() {
        assertEquals(Signal.ON, CallSignalRules.remoteControl(listOf(true, false)))
        assertEquals(Signal.OFF, CallSignalRules.remoteControl(listOf(true, true)))
        assertEquals(Signal.OFF, CallSignalRules.remoteControl(emptyList()))
        assertEquals(Signal.UNKNOWN, CallSignalRules.remoteControl(null))
        assertEquals(Signal.UNKNOWN, CallSignalRules.screenShared(null))
        assertEquals(Signal.ON, CallSignalRules.screenShared(true))
    }

    @Test
    fun `on a call the screen leads with the warning, the swipe waits for the confirmation and the bank sees it flagged`() =
        runBlocking {
            Phone(server).use { phone ->
                phone.activated().use { eid ->
                    val provider = FixedContextProvider(onCall)
                    eid.setContextProvider(provider)
                    val requestId = server.cli.createRequest(apiKey, phone.userId, "Log in to Kotlin Call Bank")
                    val view = eid.refresh().single { it.requestId == requestId }
                    assertEquals(WarningKind.ON_CALL, view.warnings.first().kind)
                    assertContains(view.warnings.first().text, "You are on a call.")
                    assertEquals(view.warnings.first(), assertNotNull(view.callWarning).warning)
                    assertEquals(onCall, view.callSignals)
                    assertTrue(view.needsStartedMyself)

                    eid.unlock(view, PIN).use { token ->
                        assertFailsWith<EidException.StartedMyselfRequired> { eid.approve(token, swipeConfirmed = true) }
                        assertEquals("pending", server.cli.status(apiKey, requestId))
                        eid.confirmStartedMyself(view)
                        assertFalse(eid.requests.value.single { it.requestId == requestId }.needsStartedMyself)
                        eid.approve(token, swipeConfirmed = true)
                    }
                    val status = server.cli.run("rp", "status", "--request", requestId, apiKey = apiKey)
                    assertEquals("approved", status.jsonString("status"))
                    assertEquals("flagged", status.jsonString("call_verdict"))
                }
            }
        }

    @Test
    fun `a self-service login approved on a call is stopped and the person told`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val authenticator = eid.authenticators.value.single()
                eid.setContextProvider(FixedContextProvider(onCall))
                val started = server.cli.run(
                    "self-service", "change-contact", "--user-id", phone.userId, "--phone", "+4599887766",
                )
                val view = eid.refresh().single { it.kind == RequestKind.SELF_SERVICE }
                eid.confirmStartedMyself(view)
                val e = assertFailsWith<EidException.Rejected> {
                    eid.approve(view, PIN, swipeConfirmed = true, bindingCode = started.jsonString("binding_code"))
                }
                assertEquals(ServerErrorCode.STOPPED_ON_CALL, e.code)
                eid.refresh()
                assertTrue(eid.requests.value.isEmpty())
                assertTrue(eid.events(authenticator).any { it.kind == SecurityEventKind.APPROVAL_STOPPED_ON_CALL })
            }
        }
    }

    @Test
    fun `without a signal on there is no warning and no gate`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val requestId = server.cli.createRequest(apiKey, phone.userId, "Log in to Kotlin Call Bank")
                val unknown = eid.refresh().single { it.requestId == requestId }
                assertNull(unknown.callWarning)
                assertFalse(unknown.needsStartedMyself)
                assertEquals(FixedContextProvider.UNKNOWN, unknown.callSignals)
                eid.setContextProvider(
                    FixedContextProvider(CallSignals(call = Signal.OFF, screenShared = Signal.OFF, remoteControl = Signal.OFF)),
                )
                val off = eid.requests.value.single { it.requestId == requestId }
                assertNull(off.callWarning)
                eid.approve(off, PIN, swipeConfirmed = true)
                val status = server.cli.run("rp", "status", "--request", requestId, apiKey = apiKey)
                assertEquals("clear", status.jsonString("call_verdict"))
            }
        }
    }

    @Test
    fun `a provider that throws reports every signal unknown, and the person can still decide`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                eid.setContextProvider(
                    object : ContextProvider {
                        override fun signals(): CallSignals = throw IllegalStateException("no audio service")
                    },
                )
                val requestId = server.cli.createRequest(apiKey, phone.userId, "Log in to Kotlin Call Bank")
                val view = eid.refresh().single { it.requestId == requestId }
                assertEquals(FixedContextProvider.UNKNOWN, view.callSignals)
                assertNull(view.callWarning)
                assertFalse(view.needsStartedMyself)
                eid.deny(view)
                assertEquals("denied", server.cli.status(apiKey, requestId))
            }
        }
    }
}
