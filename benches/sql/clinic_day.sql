-- One realistic clinic day on the clinic_schema.sql database: about 1% new rows,
-- updates concentrated on recent appointments, a few spread over old patients.
INSERT INTO patients (name, cpf, birth_date, phone, email, address, created_at)
SELECT 'Paciente novo ' || md5(random()::text), lpad((10000000000 + g + (SELECT max(id) FROM patients))::text, 11, '0'),
       date '1940-01-01' + (random() * 30000)::int, '+55 11 900000000', 'novo@example.com.br',
       'Rua ' || clinic_words(3), now()
FROM generate_series(1, (SELECT count(*) / 100 FROM patients)) g;

INSERT INTO appointments (patient_id, doctor, scheduled_at, status, notes)
SELECT 1 + floor(random() * (SELECT max(id) FROM patients))::bigint, 'Dr. Lima',
       now() + g * interval '10 minutes', 'scheduled', clinic_words(15)
FROM generate_series(1, (SELECT count(*) / 100 FROM appointments)) g;

INSERT INTO prescriptions (appointment_id, drug, dosage_mg, instructions, created_at)
SELECT (SELECT max(id) FROM appointments) - g, 'dipirona', 500, clinic_words(8), now()
FROM generate_series(1, (SELECT count(*) / 100 FROM prescriptions)) g;

INSERT INTO medical_records (patient_id, record, created_at)
SELECT 1 + floor(random() * (SELECT max(id) FROM patients))::bigint,
       jsonb_build_object('anamnese', clinic_words(25)), now()
FROM generate_series(1, (SELECT count(*) / 100 FROM medical_records)) g;

-- Yesterday's appointments change status (the newest 2%).
UPDATE appointments SET status = 'done', notes = notes || ' compareceu'
WHERE id > (SELECT max(id) - count(*) / 50 FROM appointments);

-- A few old patients move (0.1%, spread over the table).
UPDATE patients SET address = 'Rua ' || clinic_words(4)
WHERE random() < 0.001;
