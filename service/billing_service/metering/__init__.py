"""The metering core: CheckQuota, ConsumeQuota, RecordUsage and RefundUsage,
decided by one pure rule (decide.py) and stored a batch at a time
(batcher.py) through one small interface per database (backend.py).
docs/design.md draws the layers and routes."""
