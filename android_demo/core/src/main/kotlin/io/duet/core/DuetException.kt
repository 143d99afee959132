/** The one failure type of the core: a [Reason] (the golden files' ids) plus, for service errors, the HTTP details. */
package io.duet.core

/** Why something was refused; [id] is the string the golden files and the Swift core use. */
enum class Reason(val id: String) {
    /** Not valid safetensors, a wrong dtype, corrupt bytes, or a digest that does not match. */
    BLOB("blob"),

    /** A missing or extra slot, a wrong shape, or a NaN / infinite value. */
    SLOT_SHAPE("slot_shape"),

    /** An invalid manifest, another model version, or a downloaded file with the wrong sha256. */
    MANIFEST("manifest"),

    /** The service answered with an HTTP error, or did not answer at all (status 0). */
    SERVICE("service");

    companion object {
        /** The reason with this id, or null for an unknown id. */
        fun of(id: String): Reason? = values().firstOrNull { it.id == id }
    }
}

/**
 * A refusal: [reason] says which kind, the message says what was expected and what was found.
 * For [Reason.SERVICE]: [status] is the HTTP status (0 = no answer), [code] the JSON `error` code of the body and
 * [retryAfterSeconds] the Retry-After header, when sent.
 */
class DuetException(
    val reason: Reason,
    message: String,
    val status: Int = 0,
    val code: String = "",
    val retryAfterSeconds: Double? = null,
    cause: Throwable? = null
) : Exception(message, cause) {
    override fun toString(): String = "DuetException(${reason.id}): $message"
}

/** Throw a [DuetException] of [reason]; for checks that read as one line. */
internal fun refuse(reason: Reason, message: String): Nothing = throw DuetException(reason, message)
