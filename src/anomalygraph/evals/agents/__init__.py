"""Agent evals: the agents and graphs scored with fixed tasks and computed answers.

``analyst_eval``: questions on the real data (gold answers from ``analyst_recipes``, answers
read by ``analyst_graders``); ``diagnosis``: the diagnosis graph against the
best single detector; ``rulebank``: the rule-bank generation graph on TimeAnomalyBench against
the hidden banks; ``cli``: ``anomalygraph eval``.
"""
