"""The ModelScorer deployment and how deciding replicas score: remote, or in process."""
