"""Ray Serve deployments: a thin HTTP ingress and the ONNX model scorer.

Logic lives in plain modules (`deployments.pipeline`, `deployments.schemas`,
`deployments.model_holder`) that tests call without Ray.
"""
