/** ServiceClient: the service's HTTP API (manifest, program download into the cache, generate, Base's slots). */
package io.duet.core

import java.io.File
import java.net.MalformedURLException
import java.net.URL
import java.net.URLEncoder
import java.util.concurrent.atomic.AtomicInteger

/** The dtype of the slot tensors the service is asked to send (the ?dtype= query); answers decode to Float32. */
enum class SlotDtype(val id: String) { FLOAT32("float32"), FLOAT16("float16") }

/**
 * HTTP calls to the generation service with `Authorization: Bearer <apiKey>`; mirrors toolkit.client.ServiceClient.
 * Every failure is a [DuetException]: HTTP errors and no answer [Reason.SERVICE], a bad manifest or download
 * [Reason.MANIFEST]. [pinnedKey] (base64 DER, as `cli.py keys signing-key` prints it) fixes the key that signs slot
 * blobs: a manifest naming another key, or none, is refused ([SigningPin]). Thread-safe (no mutable state but the
 * request counter).
 */
class ServiceClient(baseUrl: String, apiKey: String, timeoutMillis: Int = 30_000, val pinnedKey: String? = null) {
    /** The service's base URL without a trailing slash. */
    val url: String = baseUrl.trimEnd('/')
    private val http = HttpExchange(apiKey, timeoutMillis)
    private val sent = AtomicInteger()

    /** How many HTTP requests this client has sent (a cached download sends none). */
    val requestsSent: Int get() = sent.get()

    /** GET /v1/manifest, parsed and checked ([Manifest.parse]), and held against the [pinnedKey] ([SigningPin]). */
    fun manifest(): Manifest = Manifest.parse(expect200(call("GET", "/v1/manifest"), "GET", "/v1/manifest").body)
        .also { SigningPin.check(it, pinnedKey) }

    /**
     * The file of [targetName] in [cache]: served from the cache when it is there with the manifest's sha256, else
     * GET /v1/artifacts/{target} into a temp file, digest checked, renamed into place. A served X-Artifact-SHA256
     * or a download digest that differs from [manifest]'s is [Reason.MANIFEST] (the download is deleted).
     */
    fun download(manifest: Manifest, targetName: String, cache: ArtifactCache): CachedFile {
        val target = manifest.target(targetName)
        cache.lookup(target)?.let { return CachedFile(it, false) }
        val path = "/v1/artifacts/${target.name}"
        sent.incrementAndGet()
        val (file, answer) = http.stream(endpoint(path), path) { head, input ->
            val served = head.header("X-Artifact-SHA256")
            if (served != null && served.isNotEmpty() && served != target.sha256) {
                refuse(Reason.MANIFEST, "the service sends ${target.name} with sha256 $served, but the manifest " +
                    "held says ${target.sha256}: fetch the manifest again")
            }
            cache.store(target, input)
        }
        if (file == null) throw error("GET", path, answer)
        return CachedFile(file, true)
    }

    /** [download] into an [ArtifactCache] rooted at [cacheDir]. */
    fun download(manifest: Manifest, targetName: String, cacheDir: File): CachedFile =
        download(manifest, targetName, ArtifactCache(cacheDir))

    /**
     * POST /v1/generate?dtype= with [body] as JSON, or ([binary]) as the safetensors body of [WireEncoder]; the raw
     * answer (check it with [SlotAnswer.check], or let [DeviceSlots] do it).
     */
    fun generate(body: RequestBody, dtype: SlotDtype = SlotDtype.FLOAT32, binary: Boolean = false): SlotAnswer {
        val path = "/v1/generate"
        val bytes = if (binary) WireEncoder.encode(body) else body.toJson().toByteArray(Charsets.UTF_8)
        val type = if (binary) WireEncoder.MEDIA_TYPE else "application/json"
        return slotAnswer(expect200(call("POST", path, query(dtype), bytes, type), "POST", path))
    }

    /** GET /v1/slots/base?dtype=: Base's slots, the device's fallback (checked like any answer). */
    fun baseSlots(dtype: SlotDtype = SlotDtype.FLOAT32): SlotAnswer {
        val path = "/v1/slots/base"
        return slotAnswer(expect200(call("GET", path, query(dtype)), "GET", path))
    }

    private fun query(dtype: SlotDtype): String = "?dtype=" + URLEncoder.encode(dtype.id, "UTF-8")

    private fun call(method: String, path: String, query: String = "", body: ByteArray? = null, type: String? = null): HttpAnswer {
        sent.incrementAndGet()
        return http.call(method, endpoint(path + query), path, body, type)
    }

    private fun endpoint(pathAndQuery: String): URL = try {
        URL(url + pathAndQuery)
    } catch (e: MalformedURLException) {
        throw DuetException(Reason.SERVICE, "'$url' is not a service URL (${e.message})", 0, "", null, e)
    }

    private fun expect200(answer: HttpAnswer, method: String, path: String): HttpAnswer {
        if (answer.status != 200) throw error(method, path, answer)
        return answer
    }

    private fun error(method: String, path: String, answer: HttpAnswer): DuetException =
        if (answer.status >= 400) {
            ServiceErrors.fromAnswer(method, path, answer.status, answer.body, answer.header("Retry-After"))
        } else {
            DuetException(Reason.SERVICE, "$method $path: unexpected status ${answer.status}", answer.status, "unexpected_status")
        }

    private fun slotAnswer(answer: HttpAnswer): SlotAnswer = SlotAnswer(answer.body,
        answer.header("X-Blob-SHA256") ?: "", answer.header("X-Model-Version") ?: "", answer.header("X-Slot-Dtype") ?: "",
        answer.header(BlobSignature.HEADER) ?: "")
}
