"""Analyses over stored events and leads.

Scoring, attribution, funnels, experiments, Web Vitals and KPIs.
"""
