/**
 * Slot bounds (a slot's max_abs) and Ed25519-signed slot blobs (the manifest's signing key, X-Blob-Signature):
 * parsing, the bound's edge, each way a signature is refused, the order of the checks, and DeviceSlots' fallback.
 */
package io.duet.core

import com.google.gson.Gson
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import io.duet.core.Fixtures.B
import io.duet.core.Fixtures.answer
import io.duet.core.Fixtures.f32
import io.duet.core.Fixtures.goodBlob
import io.duet.core.Fixtures.manifestJson
import io.duet.core.Fixtures.refused
import io.duet.core.Fixtures.safetensors
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.util.Base64

class TrustTest {
    private val keys: KeyPair = KeyPairGenerator.getInstance("Ed25519").generateKeyPair()
    private val publicKey: String = Base64.getEncoder().encodeToString(keys.public.encoded)

    private fun sign(blob: ByteArray, pair: KeyPair = keys): String {
        val signer = Signature.getInstance("Ed25519")
        signer.initSign(pair.private)
        signer.update(blob)
        return Base64.getEncoder().encodeToString(signer.sign())
    }

    private fun parse(edit: (JsonObject) -> Unit): Manifest {
        val json = manifestJson()
        edit(json)
        return Manifest.parse(Gson().toJson(json))
    }

    private fun JsonObject.slot(i: Int) = getAsJsonArray("slots")[i].asJsonObject

    private fun signingJson(algorithm: String = "ed25519", key: String = publicKey): JsonObject =
        JsonObject().also { it.addProperty("algorithm", algorithm); it.addProperty("public_key", key) }

    private fun signed(): Manifest = parse { it.add("signing", signingJson()) }

    /** The fixture manifest with max_abs [w] on head.w and [b] on head.b (null: none). */
    private fun bounded(w: Number?, b: Number?): Manifest = parse { json ->
        if (w != null) json.slot(0).addProperty("max_abs", w)
        if (b != null) json.slot(1).addProperty("max_abs", b)
    }

    // ---- the manifest parser

    @Test
    fun maxAbsIsOptionalAndKept() {
        assertNull(Fixtures.manifest().slots[0].maxAbs)
        val m = bounded(2, 0.5)
        assertEquals(2.0, m.slots[0].maxAbs!!, 0.0)
        assertEquals(0.5, m.slots[1].maxAbs!!, 0.0)
    }

    @Test
    fun maxAbsMustBeANumberAboveZero() {
        for (bad in listOf(JsonPrimitive(0), JsonPrimitive(-1.5), JsonPrimitive("2"), JsonPrimitive(true), JsonObject())) {
            refused(Reason.MANIFEST, "max_abs should be a number above 0") { parse { it.slot(0).add("max_abs", bad) } }
        }
    }

    @Test
    fun signingIsOptionalAndKept() {
        assertNull(Fixtures.manifest().signing)
        assertEquals(Signing("ed25519", publicKey), signed().signing)
        assertEquals(60, publicKey.length)
    }

    @Test
    fun malformedSigningIsRefused() {
        refused(Reason.MANIFEST, "signing", "algorithm 'rsa' is not supported") { parse { it.add("signing", signingJson("rsa")) } }
        refused(Reason.MANIFEST, "signing", "algorithm 'Ed25519' is not supported") { parse { it.add("signing", signingJson("Ed25519")) } }
        for (key in listOf(publicKey.dropLast(1), publicKey.dropLast(1) + "A", publicKey + "AAAA", "-" + publicKey.drop(1), "")) {
            refused(Reason.MANIFEST, "public_key", "should be base64 of a 44-byte key") { parse { it.add("signing", signingJson(key = key)) } }
        }
        refused(Reason.MANIFEST, "'signing' should be an object") { parse { it.addProperty("signing", publicKey) } }
        refused(Reason.MANIFEST, "required field 'public_key' is missing") {
            parse { it.add("signing", signingJson().also { s -> s.remove("public_key") }) }
        }
        refused(Reason.MANIFEST, "required field 'algorithm' is missing") {
            parse { it.add("signing", signingJson().also { s -> s.remove("algorithm") }) }
        }
        refused(Reason.MANIFEST, "unexpected fields [key_id]") {
            parse { it.add("signing", signingJson().also { s -> s.addProperty("key_id", "1") }) }
        }
    }

    // ---- bounds

    @Test
    fun aValueExactlyAtTheBoundIsAccepted() {
        // W = 1..6 (largest 6), B = (-1, 0.5, 0): largest |value| 1, negative
        val slots = answer(goodBlob()).check(bounded(6, 1))
        assertArrayEquals(Fixtures.W, slots.floats("head.w"), 0f)
        assertArrayEquals(B, slots.floats("head.b"), 0f)
    }

    @Test
    fun aValueBeyondTheBoundIsRefusedAsPoisoned() {
        val e = refused(Reason.BLOB) { answer(goodBlob()).check(bounded(5.999, null)) }
        assertEquals("slot 'head.w' holds |value| 6, beyond its bound 5.999 (manifest max_abs): refused as poisoned", e.message)
        // a negative value counts by its magnitude
        refused(Reason.BLOB, "slot 'head.b' holds |value| 1, beyond its bound 0.999999", "refused as poisoned") {
            answer(goodBlob()).check(bounded(null, 0.999999))
        }
        // the float32 value itself is compared: 1.0000001f is beyond a bound of 1
        val nudged = safetensors(listOf(f32("head.w", listOf(2, 3), FloatArray(6)), f32("head.b", listOf(3), floatArrayOf(0f, Math.nextUp(1f), 0f))))
        refused(Reason.BLOB, "beyond its bound 1 ") { answer(nudged).check(bounded(null, 1)) }
    }

    @Test
    fun withoutMaxAbsAnyFiniteValueIsAccepted() {
        val huge = safetensors(listOf(f32("head.w", listOf(2, 3), FloatArray(6) { 3e38f }), f32("head.b", listOf(3), B)))
        assertEquals(3e38f, answer(huge).check(Fixtures.manifest()).floats("head.w")[0], 0f)
        assertEquals(3e38f, answer(huge).check(bounded(null, 1)).floats("head.w")[0], 0f)
    }

    @Test
    fun pythonsSixSignificantDigits() {
        assertEquals("2", SlotBlob.significant6(2.0))
        assertEquals("2.001", SlotBlob.significant6((-2.001f).toDouble().let { Math.abs(it) }))
        assertEquals("123457", SlotBlob.significant6(123456.7))
        assertEquals("1.23457e+06", SlotBlob.significant6(1234567.0))
        assertEquals("0.0001", SlotBlob.significant6(0.0001))
        assertEquals("1e-05", SlotBlob.significant6(0.00001))
    }

    // ---- signatures

    @Test
    fun aSignedBlobVerifies() {
        val blob = goodBlob()
        assertEquals(SlotBlob.decode(blob, Fixtures.manifest()), answer(blob).withSignature(sign(blob)).check(signed()))
    }

    @Test
    fun everyWayASignatureFails() {
        val blob = goodBlob()
        val good = sign(blob)
        val manifest = signed()
        refused(Reason.BLOB, "not signed, but the manifest carries a signing key") { answer(blob).check(manifest) }
        refused(Reason.BLOB, "not base64") { answer(blob).withSignature("not base64!").check(manifest) }
        refused(Reason.BLOB, "not base64") { answer(blob).withSignature(good.dropLast(2)).check(manifest) } // unpadded
        refused(Reason.BLOB, "has 63 bytes, Ed25519 signatures have 64") {
            answer(blob).withSignature(Base64.getEncoder().encodeToString(Base64.getDecoder().decode(good).copyOf(63))).check(manifest)
        }
        val flipped = Base64.getDecoder().decode(good).also { it[5] = (it[5].toInt() xor 1).toByte() }
        refused(Reason.BLOB, "signature does not match") { answer(blob).withSignature(Base64.getEncoder().encodeToString(flipped)).check(manifest) }
        val other = KeyPairGenerator.getInstance("Ed25519").generateKeyPair()
        refused(Reason.BLOB, "signature does not match") { answer(blob).withSignature(sign(blob, other)).check(manifest) }
        // changed after signing, sha256 recomputed: only the signature tells
        val changed = blob.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        refused(Reason.BLOB, "signature does not match") { answer(changed).withSignature(good).check(manifest) }
    }

    @Test
    fun aKeyThatIsNotEd25519IsRefused() {
        // 44 bytes, base64 of the right length, but not an Ed25519 SubjectPublicKeyInfo
        val notEd = Base64.getEncoder().encodeToString(ByteArray(44) { 7 })
        val manifest = parse { it.add("signing", signingJson(key = notEd)) }
        refused(Reason.BLOB, "not an Ed25519 SubjectPublicKeyInfo") { answer(goodBlob()).withSignature(sign(goodBlob())).check(manifest) }
    }

    @Test
    fun withoutSigningTheHeaderIsIgnored() {
        assertEquals(SlotBlob.decode(goodBlob(), Fixtures.manifest()), answer(goodBlob()).withSignature("garbage").check(Fixtures.manifest()))
    }

    @Test
    fun checksRunInPythonsOrder() {
        val blob = goodBlob()
        val manifest = parse { json -> json.add("signing", signingJson()); json.slot(0).addProperty("max_abs", 1) }
        // sha256 first, then the signature, then the model version, then the values' bounds
        refused(Reason.BLOB, "corrupted in transit") { answer(blob).withBlob(blob + byteArrayOf(0)).check(manifest) }
        refused(Reason.BLOB, "not signed") { answer(blob, "fedcba9876543210").check(manifest) }
        refused(Reason.MANIFEST, "model version fedcba9876543210") { answer(blob, "fedcba9876543210").withSignature(sign(blob)).check(manifest) }
        // then the decode, the blob's own metadata, the bounds
        val other = Fixtures.slotBlob(Fixtures.W, B, mapOf("model_version" to "fedcba9876543210"))
        refused(Reason.BLOB, "__metadata__ names model version fedcba9876543210") { answer(other).withSignature(sign(other)).check(manifest) }
        refused(Reason.BLOB, "beyond its bound") { answer(blob).withSignature(sign(blob)).check(manifest) }
    }

    // ---- the blob's own metadata (signed) binds the model version and the task

    @Test
    fun aSignedBlobOfAnotherRunIsRefusedThoughItsHeaderSaysThisOne() {
        val manifest = signed()
        val other = Fixtures.slotBlob(Fixtures.W, B, mapOf("model_version" to "fedcba9876543210", "task" to "recommendation"))
        refused(Reason.BLOB, "names model version fedcba9876543210, the manifest 0123456789abcdef", "another run") {
            answer(other).withSignature(sign(other)).check(manifest)
        }
        val unversioned = Fixtures.slotBlob(Fixtures.W, B, mapOf("task" to "recommendation"))
        refused(Reason.BLOB, "names no model version") { answer(unversioned).withSignature(sign(unversioned)).check(manifest) }
        val otherTask = Fixtures.slotBlob(Fixtures.W, B, mapOf("model_version" to Fixtures.MODEL_VERSION, "task" to "image"))
        refused(Reason.BLOB, "names task image") { answer(otherTask).withSignature(sign(otherTask)).check(manifest) }
        // unsigned, a blob without metadata is still accepted (nothing binds it either way); one naming another run is not
        assertEquals(SlotBlob.decode(unversioned, Fixtures.manifest()), answer(unversioned).check(Fixtures.manifest()))
        refused(Reason.BLOB, "names model version fedcba9876543210") { answer(other).check(Fixtures.manifest()) }
    }

    // ---- key pinning

    @Test
    fun aPinnedKeyMustBeTheManifestsAndCannotBeDropped() {
        val blob = goodBlob()
        val manifest = signed()
        assertEquals(SlotBlob.decode(blob, manifest), answer(blob).withSignature(sign(blob)).check(manifest, publicKey))
        val other = KeyPairGenerator.getInstance("Ed25519").generateKeyPair()
        val otherKey = Base64.getEncoder().encodeToString(other.public.encoded)
        val swapped = parse { it.add("signing", signingJson(key = otherKey)) }
        // verifies against the swapped manifest's key, so only the pin refuses it
        assertEquals(SlotBlob.decode(blob, swapped), answer(blob).withSignature(sign(blob, other)).check(swapped))
        refused(Reason.MANIFEST, "names the signing key ${otherKey.take(12)}...", "pinned to ${publicKey.take(12)}...") {
            answer(blob).withSignature(sign(blob, other)).check(swapped, publicKey)
        }
        refused(Reason.MANIFEST, "carries no signing key, but this client is pinned") { answer(blob).check(Fixtures.manifest(), publicKey) }
        SigningPin.check(Fixtures.manifest(), null) // no pin: any manifest
        SigningPin.check(Fixtures.manifest(), "")
        val device = DeviceSlots(swapped, SlotBlob.decode(blob, swapped), publicKey)
        refused(Reason.MANIFEST, "pinned") { device.install(answer(blob).withSignature(sign(blob, other))) }
        assertTrue(device.usingBase)
        assertTrue(device.lastRefusal!!.message.contains("pinned"))
    }

    @Test
    fun serviceClientHoldsEveryManifestAgainstItsPin() {
        val manifestText = Gson().toJson(manifestJson().also { it.add("signing", signingJson()) })
        TestServer(mapOf("/v1/manifest" to { _: Received -> Reply(200, manifestText.toByteArray(), emptyMap()) })).use { server ->
            assertEquals(publicKey, ServiceClient(server.url, "k", pinnedKey = publicKey).manifest().signing!!.publicKey)
            assertEquals(publicKey, ServiceClient(server.url, "k").manifest().signing!!.publicKey)
            val other = Base64.getEncoder().encodeToString(KeyPairGenerator.getInstance("Ed25519").generateKeyPair().public.encoded)
            refused(Reason.MANIFEST, "but this client is pinned to ${other.take(12)}") { ServiceClient(server.url, "k", pinnedKey = other).manifest() }
        }
    }

    // ---- verifiers: Bouncy Castle's (every Android API level) and the platform's agree

    @Test
    fun bouncyCastleAndThePlatformGiveTheSameOutcomes() {
        val blob = goodBlob()
        val good = sign(blob)
        val flipped = Base64.getEncoder().encodeToString(Base64.getDecoder().decode(good).also { it[0] = (it[0].toInt() xor 1).toByte() })
        val manifest = signed()
        assertTrue(PlatformEd25519.available) // JDK 17
        for (verifier in listOf<Ed25519Verifier>(BouncyCastleEd25519, PlatformEd25519)) {
            assertEquals(verifier.name, SlotBlob.decode(blob, manifest), answer(blob).withSignature(good).check(manifest, verifier = verifier))
            refused(Reason.BLOB, "signature does not match") { answer(blob).withSignature(flipped).check(manifest, verifier = verifier) }
            refused(Reason.BLOB, "signature does not match") { answer(blob).withSignature(sign(blob, KeyPairGenerator.getInstance("Ed25519").generateKeyPair())).check(manifest, verifier = verifier) }
        }
    }

    @Test
    fun withoutPlatformEd25519TheDefaultIsBouncyCastle() {
        assertEquals(BouncyCastleEd25519, Ed25519Verifiers.choose(false)) // Android below API 33, older Conscrypt
        assertEquals(PlatformEd25519, Ed25519Verifiers.choose(true))
        assertEquals(PlatformEd25519, Ed25519Verifiers.default)
    }

    @Test
    fun deviceSlotsKeepTheLastGoodSlotsOnABadSignatureOrBound() {
        val manifest = parse { json -> json.add("signing", signingJson()); json.slot(0).addProperty("max_abs", 10) }
        val device = DeviceSlots(manifest, SlotBlob.decode(goodBlob(), manifest))
        val next = Fixtures.slotBlob(FloatArray(6) { -it.toFloat() }, B)
        val installed = device.install(answer(next).withSignature(sign(next)))
        assertFalse(device.usingBase)
        refused(Reason.BLOB, "signature does not match") { device.install(answer(goodBlob()).withSignature(sign(next))) }
        assertEquals(installed, device.current)
        assertEquals(Reason.BLOB, device.lastRefusal!!.reason)
        assertTrue(device.lastRefusal!!.message.contains("signature does not match"))
        val poisoned = Fixtures.slotBlob(FloatArray(6) { 10.5f }, B)
        refused(Reason.BLOB, "refused as poisoned") { device.install(answer(poisoned).withSignature(sign(poisoned))) }
        assertEquals(installed, device.current)
        assertTrue(device.lastRefusal!!.message.contains("beyond its bound 10"))
    }

    @Test
    fun serviceClientReadsTheSignatureHeader() {
        val blob = goodBlob()
        val signature = sign(blob)
        val headers = mapOf("X-Blob-SHA256" to Sha256.hex(blob), "X-Model-Version" to Fixtures.MODEL_VERSION,
            "X-Slot-Dtype" to "float32", "x-blob-signature" to signature)
        TestServer(mapOf(
            "/v1/slots/base" to { _: Received -> Reply(200, blob, headers) },
            "/v1/generate" to { _: Received -> Reply(200, blob, headers - "x-blob-signature") }
        )).use { server ->
            val client = ServiceClient(server.url, "k")
            val base = client.baseSlots()
            assertEquals(signature, base.signature)
            assertEquals(SlotBlob.decode(blob, Fixtures.manifest()), base.check(signed()))
            val unsigned = client.generate(RequestBody.fromJson("{\"device_id\": \"d\", \"items\": [1]}"))
            assertEquals("", unsigned.signature)
            refused(Reason.BLOB, "not signed") { unsigned.check(signed()) }
        }
    }
}
