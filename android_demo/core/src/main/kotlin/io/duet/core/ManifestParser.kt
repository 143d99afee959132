/** Manifest.parse: reads manifest.json and applies every check of the contract (and of its JSON Schema) in one pass. */
package io.duet.core

import com.google.gson.Gson
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive

internal object ManifestParser {
    private val MODEL_VERSION = Regex("[0-9a-f]{16}")
    private val SHA256 = Regex("[0-9a-f]{64}")
    private val FILE_NAME = Regex("[A-Za-z0-9_.-]+")
    private val TARGET_NAME = Regex("[a-z][a-z0-9_]*")
    private val NAME = Regex("[A-Za-z_][A-Za-z0-9_.]*")
    private val QUANTIZATION_MODES = listOf("none", "int8")
    private val TENSOR_DTYPES = listOf("int32", "float32")
    private val SERVED_AS = listOf("file", "zip")
    private val PUBLIC_KEY = Regex("[A-Za-z0-9+/]{59}=")
    private val SIGNING_FIELDS = listOf("algorithm", "public_key")

    fun parse(text: String): Manifest {
        val parsed = try {
            parseStrictJson(text, refuseDuplicates = true)
        } catch (e: DuplicateKeyException) {
            refuse(Reason.MANIFEST, "the manifest names '${e.key}' twice in one object")
        }
        val root = parsed as? JsonObject ?: refuse(Reason.MANIFEST, "the manifest is not a JSON object")
        val top = JsonFields(root, "manifest", Reason.MANIFEST)
        val format = formatVersion(top)
        val modelVersion = top.string("model_version")
        if (!MODEL_VERSION.matches(modelVersion)) {
            top.fail("model_version '$modelVersion' should be 16 lowercase hex digits")
        }
        val task = top.string("task")
        val inputs = tensors(top, "inputs")
        val output = tensor(top.child("output"))
        val slots = slots(top)
        val blobBytes = top.child("slot_blob").long("nbytes")
        val total = slots.fold(0L) { n, s -> n + s.nbytes }
        if (blobBytes != total) top.fail("slot_blob.nbytes is $blobBytes, the slots add up to $total")
        val names = inputs.map { it.name } + slots.map { it.name }
        if (names.toSet().size != names.size) top.fail("input and slot names must be unique: $names")
        val quantization = quantizationMode(top)
        val callSignature = top.strings("call_signature")
        if (callSignature != names) top.fail("call_signature $callSignature should be the inputs then the slots $names")
        val targets = targets(top, names.size)
        return Manifest(format, modelVersion, task, inputs, output, slots, blobBytes, callSignature,
            quantization, targets, requestSchema(top), signing(top))
    }

    private fun formatVersion(top: JsonFields): Int {
        val version = top.long("format_version")
        if (version != Manifest.FORMAT_VERSION.toLong()) {
            top.fail("this app understands manifest format ${Manifest.FORMAT_VERSION}; found format_version $version")
        }
        return version.toInt()
    }

    private fun objects(top: JsonFields, key: String): List<JsonFields> {
        val items = top.array(key)
        if (items.size() == 0) top.fail("'$key' should not be empty")
        return items.mapIndexed { i, item: JsonElement ->
            JsonFields(item as? JsonObject ?: top.fail("$key[$i] should be an object"), "manifest/$key[$i]",
                Reason.MANIFEST)
        }
    }

    private fun shape(fields: JsonFields): List<Int> {
        val dims = fields.array("shape")
        if (dims.size() == 0 || dims.size() > 8) fields.fail("'shape' should have 1 to 8 dimensions")
        return dims.map { d ->
            val n = d.asIntegerOrNull() ?: fields.fail("'shape' should hold integers, found $d")
            if (n < 1 || n > Int.MAX_VALUE) fields.fail("'shape' dimensions should be at least 1, found $n")
            n.toInt()
        }
    }

    private fun name(fields: JsonFields): String {
        val name = fields.string("name")
        if (!NAME.matches(name)) fields.fail("name '$name' should match ^[A-Za-z_][A-Za-z0-9_.]*$")
        return name
    }

    private fun tensor(fields: JsonFields): TensorSpec {
        val name = name(fields)
        val shape = shape(fields)
        val dtype = fields.string("dtype")
        if (dtype !in TENSOR_DTYPES) fields.fail("dtype '$dtype' should be one of ${TENSOR_DTYPES.joinToString(", ")}")
        fields.string("description")
        return TensorSpec(name, shape, dtype)
    }

    private fun tensors(top: JsonFields, key: String): List<TensorSpec> = objects(top, key).map { tensor(it) }

    private fun slots(top: JsonFields): List<SlotSpec> {
        var running = 0L
        return objects(top, "slots").map { fields ->
            val name = name(fields)
            val shape = shape(fields)
            val dtype = fields.string("dtype")
            if (dtype != "float32") fields.fail("slot '$name' has dtype '$dtype'; slots are float32")
            val offset = fields.long("offset")
            val nbytes = fields.long("nbytes")
            val expected = try {
                shape.fold(4L) { n, d -> Math.multiplyExact(n, d.toLong()) }
            } catch (e: ArithmeticException) {
                fields.fail("slot '$name' of shape $shape is too large")
            }
            if (offset != running || nbytes != expected) {
                fields.fail("slot '$name' should sit at byte $running with $expected bytes, " +
                    "found offset $offset and $nbytes bytes")
            }
            running += expected
            SlotSpec(name, shape, dtype, offset, nbytes, maxAbs(fields, name))
        }
    }

    /** The slot's optional max_abs: a finite JSON number above 0 (the schema's exclusiveMinimum 0). */
    private fun maxAbs(fields: JsonFields, slot: String): Double? {
        if (!fields.has("max_abs")) return null
        val element = fields.obj.get("max_abs")
        val value = if (element is JsonPrimitive && element.isNumber) element.asDouble else null
        if (value == null || value.isNaN() || value.isInfinite() || value <= 0.0) {
            fields.fail("slot '$slot': max_abs should be a number above 0, found $element")
        }
        return value
    }

    /** The optional top-level signing object: exactly algorithm "ed25519" and a 60-character base64 public key. */
    private fun signing(top: JsonFields): Signing? {
        if (!top.has("signing")) return null
        val fields = top.child("signing")
        val unknown = fields.obj.keySet().filter { it !in SIGNING_FIELDS }
        if (unknown.isNotEmpty()) fields.fail("unexpected fields $unknown (only ${SIGNING_FIELDS.joinToString(", ")})")
        val algorithm = fields.string("algorithm")
        if (algorithm != BlobSignature.ALGORITHM) {
            fields.fail("algorithm '$algorithm' is not supported; slot blobs are signed with ${BlobSignature.ALGORITHM}")
        }
        val publicKey = fields.string("public_key")
        if (!PUBLIC_KEY.matches(publicKey)) {
            fields.fail("public_key '$publicKey' should be base64 of a 44-byte key (^[A-Za-z0-9+/]{59}=$)")
        }
        return Signing(algorithm, publicKey)
    }

    private fun targets(top: JsonFields, arguments: Int): Map<String, Target> {
        val all = top.obj("targets")
        if (all.size() == 0) top.fail("'targets' should name at least one target")
        val result = LinkedHashMap<String, Target>()
        for ((name, value) in all.entrySet()) {
            if (!TARGET_NAME.matches(name)) top.fail("target name '$name' should match ^[a-z][a-z0-9_]*$")
            val fields = JsonFields(value as? JsonObject ?: top.fail("targets/$name should be an object"),
                "manifest/targets/$name", Reason.MANIFEST)
            result[name] = target(name, fields, arguments)
        }
        return result
    }

    private fun target(name: String, fields: JsonFields, arguments: Int): Target {
        val file = fields.string("file")
        if (!FILE_NAME.matches(file) || file == "." || file == "..") {
            fields.fail("file '$file' is not a plain file name (letters, digits, '_', '.', '-'; not '.' or '..')")
        }
        val bytes = fields.long("bytes")
        if (bytes < 1) fields.fail("bytes should be at least 1, found $bytes")
        val sha256 = fields.string("sha256")
        if (!SHA256.matches(sha256)) fields.fail("sha256 '$sha256' should be 64 lowercase hex digits")
        val servedAs = fields.optString("served_as") ?: "file"
        if (servedAs !in SERVED_AS) fields.fail("served_as '$servedAs' should be one of ${SERVED_AS.joinToString(", ")}")
        val inputNames = fields.optStrings("input_names")
        if (inputNames != null && inputNames.size != arguments) {
            fields.fail("input_names has ${inputNames.size} names for the $arguments arguments of call_signature")
        }
        return Target(name, file, bytes, sha256, fields.string("runtime"), fields.string("quantization"), servedAs,
            inputNames, fields.optString("output_name"), fields.optStrings("notes") ?: emptyList())
    }

    private fun requestSchema(top: JsonFields): String? {
        if (!top.has("generate")) return null
        val generate = top.child("generate")
        return if (generate.has("request_schema")) Gson().toJson(generate.obj("request_schema")) else null
    }

    private fun quantizationMode(top: JsonFields): String {
        val quantization = top.child("quantization")
        val mode = quantization.string("mode")
        if (mode !in QUANTIZATION_MODES) {
            quantization.fail("mode '$mode' should be one of ${QUANTIZATION_MODES.joinToString(", ")}")
        }
        return mode
    }
}
