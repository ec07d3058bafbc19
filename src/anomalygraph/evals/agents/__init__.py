"""Agent evals: the agents and graphs scored with fixed tasks and computed answers.

``rulebank``: the rule-bank generation graph on TimeAnomalyBench against the hidden banks.
"""
