"""The labels part: each batch's HJ 1276-2022 label id (标签数字识别码) as its terminal
registered it, kept in the state store (store.py) so the batch page finds a batch by it
(processor.py feeds it)."""
