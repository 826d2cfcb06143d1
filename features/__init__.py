"""Pure, Ray-free feature engine shared by the online actors and offline replay.

Nothing in this package imports Ray or anything above it: `actors/` and `training/`
import it, never the other way round.
"""

from features.config import EngineConfig
from features.engine import FeatureEngine
from features.spec import FEATURE_NAMES, HANDBOOK_FEATURES

__all__ = ["FEATURE_NAMES", "HANDBOOK_FEATURES", "EngineConfig", "FeatureEngine"]
