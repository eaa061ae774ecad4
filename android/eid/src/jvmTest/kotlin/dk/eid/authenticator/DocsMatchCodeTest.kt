package dk.eid.authenticator

import java.io.File
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.test.fail
import dk.eid.authenticator.ffi.EidException
import org.junit.jupiter.api.Test

/**
 * The documents an app developer reads first must match the code: every
 * ```kotlin block in them is a region of eid/src/docSnippets (which
 * android/framework/pom.xml compiles against the Android framework), and the
 * Kotlin column of the API table in docs/integration.md names exactly the
 * public members of [EidApp].
 */
class DocsMatchCodeTest {
    private val root = File(System.getProperty("eid.repo.root") ?: error("eid.repo.root is not set"))
    private val documents = listOf("docs/integration.md", "android/README.md", "README.md")
    private val snippetFile = "android/eid/src/docSnippets/kotlin/dk/eid/authenticator/docs/DocSnippets.kt"

    private fun read(path: String) = File(root, path).readText()

    /** `// snippet:start NAME` ... `// snippet:end` regions, without their common indentation. */
    private fun regions(source: String): Map<String, List<String>> {
        val found = mutableMapOf<String, List<String>>()
        var name: String? = null
        val body = mutableListOf<String>()
        for (line in source.lines()) {
            val trimmed = line.trim()
            when {
                trimmed.startsWith("// snippet:start ") -> {
                    name = trimmed.removePrefix("// snippet:start ")
                    body.clear()
                }
                trimmed == "// snippet:end" && name != null -> {
                    val indent = body.filter { it.isNotBlank() }.minOfOrNull { l -> l.takeWhile { it == ' ' }.length } ?: 0
                    found[name] = body.map { it.drop(indent) }
                    name = null
                }
                name != null -> body += line
            }
        }
        return found
    }

    /** Each ```kotlin block with the name from the `<!-- snippet: NAME -->` line right above it. */
    private fun kotlinBlocks(document: String): List<Pair<String?, List<String>>> {
        val lines = document.lines()
        val blocks = mutableListOf<Pair<String?, List<String>>>()
        var i = 0
        while (i < lines.size) {
            if (lines[i].trim() == "```kotlin") {
                val name = Regex("""<!-- snippet: ([\w-]+) -->""").find(lines.getOrElse(i - 1) { "" })?.groupValues?.get(1)
                val body = mutableListOf<String>()
                i++
                while (i < lines.size && lines[i].trim() != "```") body += lines[i++]
                blocks += name to body
            }
            i++
        }
        return blocks
    }

    @Test
    fun `every kotlin block in the documents is a compiled snippet`() {
        val snippets = regions(read(snippetFile))
        assertTrue(snippets.isNotEmpty(), "no snippet regions in $snippetFile")
        val used = mutableSetOf<String>()
        for (path in documents) {
            for ((name, lines) in kotlinBlocks(read(path))) {
                if (name == null) fail("$path: a ```kotlin block has no `<!-- snippet: NAME -->` line above it")
                val region = snippets[name] ?: fail("$path: snippet $name is not in $snippetFile")
                used += name
                assertEquals(region.map { it.trimEnd() }, lines.map { it.trimEnd() }, "$path: snippet $name differs from $snippetFile")
            }
        }
        assertEquals(snippets.keys, used, "snippets in $snippetFile that no document shows")
    }

    @Test
    fun `the API table names every public member of EidApp`() {
        val source = read("android/eid/src/main/kotlin/dk/eid/authenticator/EidApp.kt")
        // Members sit at the class's indentation (4 spaces), the companion's
        // `open` one level deeper; locals are deeper still, or `val`s at 8.
        val member = Regex("""^(?: {4}|( {8}))(?:@\w+(?:\([^)]*\))?\s+)*(?:override\s+)?(?:suspend\s+)?(fun|val)\s+(?:<[^>]*>\s*)?(\w+)""")
        val code = source.lines()
            .filterNot { Regex("""\b(private|internal|protected)\b""").containsMatchIn(it) }
            .mapNotNull { line -> member.find(line)?.groupValues?.takeIf { it[1].isEmpty() || it[2] == "fun" }?.get(3) }
            .toSet()
        assertTrue("approve" in code && "open" in code, "the member pattern found: $code")
        assertEquals(code, apiTableColumn(0), "docs/integration.md's API table (Kotlin column) and EidApp.kt differ")
    }

    @Test
    fun `the error table in the integration guide lists every EidException case`() {
        val cases = EidException::class.java.declaredClasses
            .filter { EidException::class.java.isAssignableFrom(it) }
            .map { it.simpleName }
            .toSet()
        assertTrue("WrongPin" in cases, "the generated cases found: $cases")
        val doc = read("docs/integration.md")
        val start = doc.indexOf("<!-- error-table -->")
        assertTrue(start >= 0, "no error table marker in docs/integration.md")
        val rows = doc.substring(start).lines().drop(1).takeWhile { it.startsWith("|") }.drop(2)
        // The first column names the case (`WrongPin(attemptsLeft, ...)`,
        // `BindingCodeRequired` / `WrongBindingCode`, `Rejected(DeviceLimitReached)`).
        val documented = rows.flatMap { row ->
            Regex("""`([A-Za-z_]\w*)""").findAll(row.split("|")[1]).map { it.groupValues[1] }.toList()
        }.toSet()
        assertEquals(cases, documented, "docs/integration.md's error table and EidException differ")
    }

    /** The member names in one column (0 Kotlin, 1 Swift) of the table after `<!-- api-table: EidApp -->`. */
    private fun apiTableColumn(column: Int): Set<String> {
        val doc = read("docs/integration.md")
        val start = doc.indexOf("<!-- api-table: EidApp -->")
        assertTrue(start >= 0, "no API table marker in docs/integration.md")
        val rows = doc.substring(start).lines().dropWhile { !it.startsWith("|") }.takeWhile { it.startsWith("|") }.drop(2)
        assertTrue(rows.size > 10, "API table too short")
        return rows.flatMap { row ->
            Regex("""`([A-Za-z_]\w*)""").findAll(row.split("|")[column + 1]).map { it.groupValues[1] }.toList()
        }.toSet()
    }
}
