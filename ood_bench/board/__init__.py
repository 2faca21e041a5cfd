"""Leaderboards made from records alone: tables with intervals, verdicts, plots and the html page."""
