package dk.eid.authenticator

import java.util.UUID
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance

/**
 * Two people on one phone: the household screen shows each with a count and
 * nothing about what waits; details come only for the person chosen.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HouseholdTest {
    private lateinit var server: TestServer
    private lateinit var apiKey: String

    @BeforeAll
    fun startServer() {
        server = TestServer.start()
        apiKey = server.cli.registerProvider("Kotlin Household Bank")
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    @Test
    fun `household lists people with counts and details only after choosing`() = runBlocking {
        Phone(server).use { phone ->
            phone.activated().use { eid ->
                val partner = "kt-${UUID.randomUUID().toString().take(8)}9b"
                val partnerIdentity = server.cli.createIdentity(partner)
                eid.activate(partner, server.cli.activationCode(partnerIdentity), PIN)

                val secret = "Transfer 25,000 DKK to account 1234-5678901"
                server.cli.createRequest(apiKey, phone.userId, secret)
                server.cli.createRequest(apiKey, phone.userId, "Log in to netbank")
                server.cli.createRequest(apiKey, partner, "Log in to netbank")
                eid.refresh()

                val people = eid.household.value
                assertEquals(listOf(phone.userId, partner), people.map { it.userId })
                assertEquals(listOf(2u, 1u), people.map { it.pendingRequests })
                assertEquals("2 requests waiting", people[0].headline)
                assertFalse(people.toString().contains("25,000"), "the first screen says nothing about requests")

                val mine = eid.requestsFor(people[0])
                assertEquals(2, mine.size)
                assertTrue(mine.all { it.authenticatorId == people[0].authenticatorId })
                assertTrue(mine.any { it.referenceText == secret })
                assertEquals(1, eid.requestsFor(people[1]).size)
            }
        }
    }
}
