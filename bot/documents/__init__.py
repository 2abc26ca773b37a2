"""Invoices, receipts and credit notes: drafted from gateway objects, numbered, rendered, emailed."""
