"""Ray Serve deployments: a thin HTTP ingress and the ONNX model scorer.

Logic lives in plain modules (`deployments.scoring.pipeline`, `deployments.http.schemas`,
`deployments.model.versions`) that tests call without Ray.
"""
