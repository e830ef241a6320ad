"""The domain: models, errors, validation rules and period arithmetic. No I/O."""
