"""Domain logic: validation, policy and orchestration over the Store."""
