"""Mixed-precision search (seed 000): action space, cost model, MDP, actor-critic agent and baselines."""

from .agent import METHODS, ActorCritic, SearchResult, search_precision
from .cost import CostEstimate, CostModel, analytic_cost, layer_features, trace_functional
from .env import EnvConfig, SearchEnv, cross_entropy, threshold
from .space import KNOBS, SearchSpace

__all__ = ["METHODS", "ActorCritic", "SearchResult", "search_precision", "CostEstimate", "CostModel",
           "analytic_cost", "layer_features", "trace_functional", "EnvConfig", "SearchEnv", "cross_entropy",
           "threshold", "KNOBS", "SearchSpace"]
