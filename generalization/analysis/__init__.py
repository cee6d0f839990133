"""Analysis over the store's accuracy table: trend fits and bands, figures in the paper's style, the report,
and accuracy by selection frequency.
"""
