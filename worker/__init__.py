"""The worker process: hosts exactly one call client and speaks ``protocol`` to the supervisor."""
