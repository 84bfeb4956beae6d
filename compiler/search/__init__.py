"""Mixed-precision search (seed 000): action space, cost model, MDP, actor-critic agent, baselines, selection on
held-out images, Pareto fronts and the evaluation cache."""

from .agent import RL_DEFAULTS, ActorCritic, RLSearch
from .cost import COST_TERMS, CostEstimate, CostModel, analytic_cost, layer_features, trace_functional
from .env import EnvConfig, SearchEnv, cross_entropy
from .methods import METHODS, SearchResult, search_precision
from .record import Evaluation
from .selection import choose, drop_upper_bound, pareto_front
from .space import KNOBS, SearchSpace

__all__ = ["RL_DEFAULTS", "ActorCritic", "RLSearch", "COST_TERMS", "CostEstimate", "CostModel", "analytic_cost",
           "layer_features", "trace_functional", "EnvConfig", "SearchEnv", "cross_entropy", "METHODS",
           "SearchResult", "search_precision", "Evaluation", "choose", "drop_upper_bound", "pareto_front",
           "KNOBS", "SearchSpace"]
