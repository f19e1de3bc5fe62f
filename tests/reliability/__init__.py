"""The reliability suite: injected faults, kill and resume, hostile files and answers,
storage faults, and a sweep for leaked secrets (see the README's Reliability section)."""
