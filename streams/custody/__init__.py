"""The custody part: the chain-of-custody rules and tracker (rules.py), its stream processor
(processor.py), its store of events and verdicts (store.py) and the management ledger, a
report over that store (ledger.py)."""
