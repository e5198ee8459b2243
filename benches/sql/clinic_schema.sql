-- A clinic-like database for tests and benchmarks: patients, appointments,
-- prescriptions and medical records. Sized by the psql variable `scale`
-- (scale 1 is about 12 MB of uncompressed dump; 80 is about 1 GB). Deterministic: setseed.
SELECT setseed(0.42);

CREATE TABLE patients (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    cpf         char(11) NOT NULL UNIQUE,
    birth_date  date NOT NULL,
    phone       text,
    email       text,
    address     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE appointments (
    id           bigserial PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES patients(id),
    doctor       text NOT NULL,
    scheduled_at timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('scheduled','done','cancelled','no-show')),
    notes        text
);
CREATE INDEX appointments_patient ON appointments(patient_id);
CREATE INDEX appointments_scheduled ON appointments(scheduled_at);

CREATE TABLE prescriptions (
    id             bigserial PRIMARY KEY,
    appointment_id bigint NOT NULL REFERENCES appointments(id),
    drug           text NOT NULL,
    dosage_mg      numeric(8,2) NOT NULL,
    instructions   text NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX prescriptions_appointment ON prescriptions(appointment_id);

CREATE TABLE medical_records (
    id          bigserial PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES patients(id),
    record      jsonb NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL
);
CREATE INDEX medical_records_patient ON medical_records(patient_id);

-- Words for notes: realistic text compresses like real notes do.
CREATE FUNCTION clinic_words(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg((ARRAY['paciente','refere','dor','abdominal','há','três','dias',
    'sem','febre','pressão','arterial','controlada','retorno','em','trinta','exame',
    'solicitado','hemograma','glicemia','normal','alterado','orientado','repouso',
    'hidratação','uso','contínuo','medicação','alergia','nega','cefaleia','tosse'])
    [1 + floor(random() * 31)::int], ' ')
  FROM generate_series(1, n)
$$;

INSERT INTO patients (name, cpf, birth_date, phone, email, address, created_at)
SELECT 'Paciente ' || g || ' ' || md5(g::text),
       lpad(g::text, 11, '0'),
       date '1940-01-01' + (random() * 30000)::int,
       '+55 11 9' || lpad((random() * 99999999)::int::text, 8, '0'),
       'p' || g || '@example.com.br',
       'Rua ' || clinic_words(3) || ', ' || (random() * 2000)::int || ' - São Paulo',
       timestamptz '2010-01-01' + g * interval '1 minute'
FROM generate_series(1, 5000 * :scale) g;

INSERT INTO appointments (patient_id, doctor, scheduled_at, status, notes)
SELECT 1 + floor(random() * 5000 * :scale)::bigint,
       'Dr. ' || (ARRAY['Silva','Souza','Oliveira','Santos','Lima'])[1 + floor(random() * 5)::int],
       timestamptz '2015-01-01' + g * interval '5 minutes',
       (ARRAY['done','done','done','cancelled','no-show'])[1 + floor(random() * 5)::int],
       clinic_words(10 + floor(random() * 20)::int)
FROM generate_series(1, 20000 * :scale) g;

INSERT INTO prescriptions (appointment_id, drug, dosage_mg, instructions, created_at)
SELECT 1 + (g % (20000 * :scale)),
       (ARRAY['dipirona','amoxicilina','losartana','metformina','omeprazol'])[1 + floor(random() * 5)::int],
       round((random() * 1000)::numeric, 2),
       clinic_words(8),
       timestamptz '2015-01-01' + g * interval '4 minutes'
FROM generate_series(1, 25000 * :scale) g;

INSERT INTO medical_records (patient_id, record, tags, created_at)
SELECT 1 + floor(random() * 5000 * :scale)::bigint,
       jsonb_build_object('pa', (100 + random() * 60)::int || 'x' || (60 + random() * 30)::int,
                          'peso', round((50 + random() * 60)::numeric, 1),
                          'anamnese', clinic_words(25),
                          'cid', 'J' || (10 + floor(random() * 80)::int)),
       ARRAY[(ARRAY['retorno','urgente','crônico'])[1 + floor(random() * 3)::int]],
       timestamptz '2015-01-01' + g * interval '6 minutes'
FROM generate_series(1, 15000 * :scale) g;

ANALYZE patients, appointments, prescriptions, medical_records;
