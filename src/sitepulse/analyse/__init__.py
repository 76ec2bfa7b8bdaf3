"""Analyses over stored events and leads: scoring, attribution, funnels, experiments, vitals, KPIs."""
