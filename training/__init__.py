"""Training, evaluation and export of the fraud model (imports `features/`, never the service)."""
