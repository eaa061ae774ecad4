package dk.eid.authenticator

import java.io.File
import java.nio.file.Files
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertTrue
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import dk.eid.authenticator.ffi.AppConfig
import dk.eid.authenticator.ffi.ContactChangeState
import dk.eid.authenticator.ffi.EidException
import dk.eid.authenticator.ffi.EnrolmentStatus
import dk.eid.authenticator.ffi.HardwareAuthenticatorInfo
import dk.eid.authenticator.ffi.HardwareKind
import dk.eid.authenticator.ffi.HardwareState
import dk.eid.authenticator.ffi.Language
import dk.eid.authenticator.ffi.PendingDeviceState
import dk.eid.authenticator.ffi.RequestKind
import dk.eid.authenticator.ffi.SecurityEventKind
import dk.eid.authenticator.ffi.ServerErrorCode
import dk.eid.authenticator.ffi.WarningKind

/**
 * The protections of docs/architecture.md §3 through the Kotlin shell against a real server: the
 * security feed, "notify me on every use", and a new device added from an
 * existing phone with its waiting period (2 s on this server) and cancel.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProtectionsTest {
    private lateinit var server: TestServer
    private lateinit var apiKey: String

    @BeforeAll
    fun startServer() {
        server = TestServer.start(newDeviceWaitSecs = 2)
        apiKey = server.cli.registerProvider("Kotlin Protections Bank")
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    /** A second phone (its own files and keystore) for [phone]'s person. */
    private suspend fun newPhone(): Pair<EidApp, File> {
        val dir = Files.createTempDirectory("eid-kotlin-new-phone").toFile()
        val config = AppConfig(
            databasePath = File(dir, "eid.sqlite").path,
            serverUrl = server.url,
            serverSpkiPin = server.spkiPin,
            language = Language.ENGLISH,
            kdfIterations = 1000u,
            minReadMs = 0uL,
            allowSoftwareKeystore = SOFTWARE_KEYSTORE_OPT_IN,
        )
        return EidApp.open(config, SoftwareKeyStore()) to dir
    }

    @Test
    fun `the feed shows blocks and, once turned on, every use`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val authenticator = eid.authenticators.value.single()
                server.cli.setBlocked(phone.identityId, true)
                server.cli.setBlocked(phone.identityId, false)
                eid.refresh()
                val kinds = eid.events(authenticator).map { it.kind }
                assertEquals(
                    listOf(
                        SecurityEventKind.IDENTITY_UNBLOCKED,
                        SecurityEventKind.IDENTITY_BLOCKED,
                        SecurityEventKind.DEVICE_ACTIVATED,
                    ),
                    kinds,
                    "newest first",
                )
                val blocked = eid.events(authenticator).first { it.kind == SecurityEventKind.IDENTITY_BLOCKED }
                assertTrue(blocked.critical)
                assertTrue(blocked.title.isNotBlank() && blocked.body.isNotBlank())

                assertFalse(eid.notifyEveryUse(authenticator))
                val requestId = server.cli.createRequest(apiKey, phone.userId, "Log in to netbank")
                eid.approve(eid.refresh().single { it.requestId == requestId }, PIN, swipeConfirmed = true)
                eid.refresh()
                assertTrue(eid.events(authenticator).none { it.kind == SecurityEventKind.USED })

                eid.turnOnNotifyEveryUse(authenticator)
                eid.refresh()
                assertTrue(eid.notifyEveryUse(authenticator))
                val second = server.cli.createRequest(apiKey, phone.userId, "Log in to netbank again")
                eid.approve(eid.refresh().single { it.requestId == second }, PIN, swipeConfirmed = true)
                eid.refresh()
                val used = eid.events(authenticator).first()
                assertEquals(SecurityEventKind.USED, used.kind)
                assertFalse(used.critical)
                assertContains(used.body, "Kotlin Protections Bank")

                // Off needs the PIN, and the feed says so.
                eid.turnOffNotifyEveryUse(authenticator, PIN)
                eid.refresh()
                assertFalse(eid.notifyEveryUse(authenticator))
                val off = eid.events(authenticator).first()
                assertEquals(SecurityEventKind.NOTIFY_EVERY_USE_TURNED_OFF, off.kind)
                assertTrue(off.critical)
            }
        }
    }

    @Test
    fun `the hardware list comes from the server and a deactivation needs the swipe and the PIN`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val authenticator = eid.authenticators.value.single()
                assertTrue(eid.hardwareAuthenticators(authenticator).isEmpty())
                val stranger = HardwareAuthenticatorInfo(
                    id = "0".repeat(32),
                    kind = HardwareKind.CHIP,
                    maskedSerial = "…0000",
                    state = HardwareState.ACTIVE,
                    addedAtMs = 0uL,
                    lastUsedAtMs = null,
                    activeFromMs = null,
                )
                assertFailsWith<EidException.SwipeRequired> {
                    eid.deactivateHardware(authenticator, stranger, PIN, swipeConfirmed = false)
                }
                assertFailsWith<EidException.WrongPin> {
                    eid.deactivateHardware(authenticator, stranger, WRONG_PIN, swipeConfirmed = true)
                }
                val e = assertFailsWith<EidException.Rejected> {
                    eid.deactivateHardware(authenticator, stranger, PIN, swipeConfirmed = true)
                }
                assertEquals(ServerErrorCode.UNKNOWN_HARDWARE, e.code)
            }
        }
    }

    @Test
    fun `a code device activation shows the loudest warning and is added on approval`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val authenticator = eid.authenticators.value.single()
                val dir = Files.createTempDirectory("eid-kotlin-code-device").toFile()
                try {
                    // The fuzz corpus's good batch: two devices under the key 0x42 x 16.
                    val batch = File(Repo.root, "fuzz/corpus/pskc/valid-two-devices.xml").path
                    val key = File(dir, "psk").apply { writeText("42".repeat(16)) }
                    val access = File(dir, "access").apply { writeText("green-harbour-77") }
                    server.cli.run("admin", "import-tokens", "--file", batch, "--pre-shared-key-file", key.path)
                    val requestId = server.cli.run(
                        "token", "request-activation", "--user-id", phone.userId, "--serial", "CD0001",
                        "--pskc", batch, "--pre-shared-key-file", key.path, "--access-code-file", access.path,
                    ).jsonString("request_id")
                    val view = eid.refresh().single { it.requestId == requestId }
                    assertEquals(RequestKind.CODE_DEVICE, view.kind)
                    assertEquals(WarningKind.CODE_DEVICE, view.warnings.first().kind, "the loudest warning first")
                    assertTrue(view.warnings.first().text.isNotBlank())
                    eid.approve(view, PIN, swipeConfirmed = true)
                    eid.refresh()
                    val added = eid.events(authenticator).first { it.kind == SecurityEventKind.CODE_DEVICE_ADDED }
                    assertTrue(added.critical)
                    assertTrue(added.title.isNotBlank() && added.body.isNotBlank())
                } finally {
                    dir.deleteRecursively()
                }
            }
        }
    }

    @Test
    fun `a new phone is added from the existing one after the waiting period`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { old ->
                val (new, dir) = newPhone()
                try {
                    new.use {
                        val enrolment = new.startDeviceEnrolment(phone.userId, PIN)
                        assertEquals(8, enrolment.code.length)
                        assertIs<EnrolmentStatus.AwaitingApproval>(new.pollDeviceEnrolment())

                        // The existing phone shows the strongest warning and needs the code.
                        val view = old.refresh().single { it.kind == RequestKind.NEW_DEVICE }
                        assertTrue(view.warnings.any { it.kind == WarningKind.NEW_DEVICE })
                        assertFailsWith<EidException.BindingCodeRequired> {
                            old.approve(view, PIN, swipeConfirmed = true)
                        }
                        // Scanning the new phone's QR code hands its payload over as is.
                        old.approve(view, PIN, swipeConfirmed = true, bindingCode = enrolment.qrPayload)

                        val waiting = new.pollDeviceEnrolment()
                        assertIs<EnrolmentStatus.Waiting>(waiting)
                        old.refresh()
                        val authenticator = old.authenticators.value.single()
                        assertEquals(PendingDeviceState.WAITING, old.pendingDevices(authenticator).single().state)
                        assertTrue(old.events(authenticator).any { it.kind == SecurityEventKind.NEW_DEVICE_APPROVED })

                        delay(waiting.remainingMs.toLong() + 300)
                        val done = new.pollDeviceEnrolment()
                        assertIs<EnrolmentStatus.Activated>(done)
                        assertEquals(phone.userId, new.authenticators.value.single().userId)
                        assertEquals(done.authenticator.authenticatorId, new.authenticators.value.single().authenticatorId)
                    }
                } finally {
                    dir.deleteRecursively()
                }
            }
        }
    }

    @Test
    fun `the existing phone cancels a scammer's new phone during the wait`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { old ->
                val (scammer, dir) = newPhone()
                try {
                    scammer.use {
                        val enrolment = scammer.startDeviceEnrolment(phone.userId, PIN)
                        val view = old.refresh().single { it.kind == RequestKind.NEW_DEVICE }
                        // Talked into it: the victim approves with the code read out to them.
                        old.approve(view, PIN, swipeConfirmed = true, bindingCode = enrolment.code)
                        assertIs<EnrolmentStatus.Waiting>(scammer.pollDeviceEnrolment())

                        old.refresh()
                        val authenticator = old.authenticators.value.single()
                        old.cancelDeviceEnrolment(authenticator, old.pendingDevices(authenticator).single())
                        old.refresh()
                        assertTrue(old.pendingDevices(authenticator).isEmpty())
                        assertTrue(old.events(authenticator).any { it.kind == SecurityEventKind.NEW_DEVICE_CANCELLED })

                        delay(2_500)
                        assertFailsWith<EidException.EnrolmentRefused> { scammer.pollDeviceEnrolment() }
                        assertFailsWith<EidException.NoPendingEnrolment> { scammer.pollDeviceEnrolment() }
                        assertTrue(scammer.authenticators.value.isEmpty())
                    }
                } finally {
                    dir.deleteRecursively()
                }
            }
        }
    }

    @Test
    fun `a phone change started at self-service is shown with its earliest time and cancelled from the app`() =
        runBlocking {
            Phone(server).use { phone ->
                phone.activated().use { eid ->
                    val authenticator = eid.authenticators.value.single()
                    val started = server.cli.run(
                        "self-service", "change-contact", "--user-id", phone.userId, "--phone", "+4587654321",
                    )
                    val changeId = started.jsonString("change_id")
                    val view = eid.refresh().single { it.kind == RequestKind.SELF_SERVICE }
                    assertTrue(view.warnings.any { it.kind == WarningKind.SELF_SERVICE })
                    assertTrue(view.warnings.any { it.kind == WarningKind.BINDING_CODE_REQUIRED })
                    assertContains(view.referenceText.orEmpty(), "+45••••••21")
                    // The login is bound to the portal session: the code it showed.
                    eid.approve(view, PIN, swipeConfirmed = true, bindingCode = started.jsonString("binding_code"))

                    eid.refresh()
                    val change = eid.pendingContactChanges(authenticator).single()
                    assertEquals(changeId, change.changeId)
                    assertEquals(ContactChangeState.WAITING_SECOND_LOGIN, change.state)
                    assertEquals("+45••••••21", change.newValueMasked)
                    val earliest = checkNotNull(change.earliestCompletionAtMs)
                    assertTrue(earliest >= change.createdAtMs + 3_600_000uL, "an hour after the first login")

                    eid.cancelContactChange(authenticator, change)
                    eid.refresh()
                    assertTrue(eid.pendingContactChanges(authenticator).isEmpty())
                    assertTrue(eid.events(authenticator).any { it.kind == SecurityEventKind.CONTACT_CHANGE_CANCELLED })
                    val closed = assertFailsWith<Cli.Failure> {
                        server.cli.run("self-service", "confirm", "--change", changeId, "--user-id", phone.userId)
                    }
                    assertContains(closed.json, "change_closed")
                    assertTrue(eid.journalAlarms(authenticator).isEmpty(), "every decision here was this phone's own")
                }
            }
        }
}
