"""The toolkit's own export targets (ExecuTorch, LiteRT, Core ML): one module each, implementing the exporter contract
of toolkit.exporting.contract and registered through the `duet.exporters` entry points in pyproject.toml.

SUPPORT_MODULES lists the modules here that are not targets; a test checks that every other module is registered.
"""

SUPPORT_MODULES: dict[str, str] = {  # modules of exporters/ that are not targets, and who owns them
    "exporters.base": "what the built-in targets share to implement the contract",
    "exporters.coreml.mil": "coreml: numpy evaluator of the saved ML program (Linux has no Core ML runtime)",
}
