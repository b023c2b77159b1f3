"""The compute service layer (like nova.compute): server operations below HTTP, above the conductor."""
