"""Finance reports: exact tables from our own records, with a chart and CSV/XLSX exports.

`refunds` (who refunded what, why, approved by whom) and `agents` (each person's audited
trail) read the approvals and the audit log; `tax` reads the documents we issued.
"""
