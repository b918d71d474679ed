"""What report.qmd calls: typed results, tables, numbers for the prose, statistics, figures and code listings."""
