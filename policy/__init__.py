"""Decision policy around the model score: rules and lists, reasons, costs (pure, Ray-free).

Shared by the online service (the ingress applies it to every scored batch) and offline tools
(`fraud backtest`, `fraud train`'s cost thresholds), so a rule set does the same on history
as it will do live.
"""
