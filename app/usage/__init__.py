"""Usage as data: one row per completion, the orgs' monthly totals and budgets, and the usage API.

Below chat and v1 (which record usage and check budgets before a provider
call) and conversations (which shows a conversation's totals); above orgs,
whose membership rules guard the org usage and budget routes.
"""
