-- Lead scores (analyse/scoring.py): the total and tier were placeholders in 0001;
-- these columns say which model scored the lead, when, and when sales must follow up.
ALTER TABLE leads ADD COLUMN fit_score DOUBLE;
ALTER TABLE leads ADD COLUMN engagement_score DOUBLE;
ALTER TABLE leads ADD COLUMN score_model VARCHAR;
ALTER TABLE leads ADD COLUMN scored_at TIMESTAMP;
ALTER TABLE leads ADD COLUMN follow_up_due TIMESTAMP;
