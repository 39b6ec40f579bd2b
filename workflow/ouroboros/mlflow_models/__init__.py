"""MLflow "models from code" definitions used when logging generations."""
