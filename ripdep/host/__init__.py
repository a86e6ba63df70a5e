"""The thin seam to the host: every subprocess, file write, D-Bus call and SQL query lives here.

Functions are small typed wrappers without policy; deciding what to do is the planner's job.
"""
