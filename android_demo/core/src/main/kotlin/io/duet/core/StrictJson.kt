/** Strict JSON reading for untrusted text (manifests, safetensors headers): typed field access that refuses with a reason. */
package io.duet.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import com.google.gson.internal.LazilyParsedNumber
import com.google.gson.stream.JsonReader
import com.google.gson.stream.JsonToken
import java.io.StringReader

private val INTEGER = Regex("-?(0|[1-9][0-9]*)")

/** A JSON object that names the same key twice ([key]); Gson alone would keep the last value silently. */
internal class DuplicateKeyException(val key: String) : RuntimeException("the key '$key' appears twice")

/**
 * Parse [text] as one strict JSON value (no comments, no NaN, no trailing text, no raw control characters inside
 * strings, which Gson alone lets through); null when it is not JSON. JSON whitespace (space, tab, CR, LF) may
 * surround the value. With [refuseDuplicates], an object (at any depth) that names a key twice throws
 * [DuplicateKeyException] instead of keeping the last value.
 */
internal fun parseStrictJson(text: String, refuseDuplicates: Boolean = false): JsonElement? {
    if (hasRawControlInString(text)) return null
    return try {
        val reader = JsonReader(StringReader(text))
        reader.isLenient = false
        val element = readTree(reader, refuseDuplicates)
        if (reader.peek() != JsonToken.END_DOCUMENT) null else element
    } catch (e: DuplicateKeyException) {
        throw e
    } catch (e: Exception) {
        null
    }
}

/** The first character of [text] that is not JSON whitespace (space, tab, CR, LF), or null. */
internal fun firstNonJsonSpace(text: String): Char? = text.firstOrNull { it != ' ' && it != '\t' && it != '\n' && it != '\r' }

/** One JSON value read without recursion (a deeply nested header cannot exhaust the stack). */
private fun readTree(reader: JsonReader, refuseDuplicates: Boolean): JsonElement {
    val open = ArrayList<JsonElement>()
    var name: String? = null
    var root: JsonElement? = null
    fun attach(value: JsonElement) {
        val parent = open.lastOrNull()
        when (parent) {
            null -> root = value
            is JsonObject -> {
                val key = name ?: throw IllegalStateException("a value without a name inside an object")
                if (refuseDuplicates && parent.has(key)) throw DuplicateKeyException(key)
                parent.add(key, value)
                name = null
            }
            else -> (parent as JsonArray).add(value)
        }
    }
    do {
        when (reader.peek()) {
            JsonToken.BEGIN_OBJECT -> {
                reader.beginObject()
                val obj = JsonObject()
                attach(obj)
                open.add(obj)
            }
            JsonToken.BEGIN_ARRAY -> {
                reader.beginArray()
                val array = JsonArray()
                attach(array)
                open.add(array)
            }
            JsonToken.END_OBJECT -> {
                reader.endObject()
                open.removeAt(open.size - 1)
            }
            JsonToken.END_ARRAY -> {
                reader.endArray()
                open.removeAt(open.size - 1)
            }
            JsonToken.NAME -> name = reader.nextName()
            JsonToken.STRING -> attach(JsonPrimitive(reader.nextString()))
            JsonToken.NUMBER -> attach(JsonPrimitive(LazilyParsedNumber(reader.nextString())))
            JsonToken.BOOLEAN -> attach(JsonPrimitive(reader.nextBoolean()))
            JsonToken.NULL -> {
                reader.nextNull()
                attach(JsonNull.INSTANCE)
            }
            else -> throw IllegalStateException("the JSON text ends inside a value")
        }
    } while (open.isNotEmpty())
    return root ?: throw IllegalStateException("no JSON value")
}

/** True when a string literal of [text] holds a character below U+0020 (JSON requires those escaped). */
private fun hasRawControlInString(text: String): Boolean {
    var inString = false
    var escaped = false
    for (c in text) {
        when {
            !inString -> if (c == '"') inString = true
            escaped -> escaped = false
            c == '\\' -> escaped = true
            c == '"' -> inString = false
            c < ' ' -> return true
        }
    }
    return false
}

/** The integer value of a JSON number written as an integer literal (no fraction, no exponent), else null. */
internal fun JsonElement.asIntegerOrNull(): Long? {
    if (this !is JsonPrimitive || !isNumber) return null
    val text = asString
    return if (INTEGER.matches(text)) text.toLongOrNull() else null
}

/** The string of a JSON string, else null. */
internal fun JsonElement.asTextOrNull(): String? = if (this is JsonPrimitive && isString) asString else null

/** Typed reads of one JSON object's fields; a missing or mistyped field is a [DuetException] of [reason]. */
internal class JsonFields(val obj: JsonObject, private val where: String, private val reason: Reason) {

    fun has(key: String): Boolean = obj.has(key)

    fun fail(message: String): Nothing = refuse(reason, "$where: $message")

    private fun need(key: String): JsonElement = obj.get(key) ?: fail("required field '$key' is missing")

    fun string(key: String): String = need(key).asTextOrNull() ?: fail("'$key' should be a string")

    fun optString(key: String): String? = if (has(key)) string(key) else null

    fun long(key: String): Long = need(key).asIntegerOrNull() ?: fail("'$key' should be an integer")

    fun obj(key: String): JsonObject = need(key) as? JsonObject ?: fail("'$key' should be an object")

    fun array(key: String): JsonArray = need(key) as? JsonArray ?: fail("'$key' should be an array")

    fun strings(key: String): List<String> =
        array(key).map { it.asTextOrNull() ?: fail("'$key' should be an array of strings") }

    fun optStrings(key: String): List<String>? = if (has(key)) strings(key) else null

    fun child(key: String): JsonFields = JsonFields(obj(key), "$where/$key", reason)
}
