-- The worst case for deduplication: 1% of appointments updated, spread uniformly.
UPDATE appointments SET notes = notes || ' revisado' WHERE random() < 0.01;
