-- Data of bench/run, in one transaction. psql variables: nusers (how many
-- users to seed), a and b (ids of bench_alice and bench_bob, registered
-- through the API). Seeded users have emails @seed.bench.example and a
-- password hash no password matches.
\set ON_ERROR_STOP 1
BEGIN;

-- Names chosen so that searches hit both ways: "mar" starts usernames and
-- first names (maria, mark, martin) and sits inside others (omar, tamara);
-- "sen" is only ever inside a name (jensen, hansen, olsen).
INSERT INTO users (email, hashed_password, username, first_name, last_name, is_verified)
SELECT lower(n.f || '.' || n.l || g) || '@seed.bench.example', 'bench-seed-no-password',
       lower(n.f || '.' || n.l || g), n.f, n.l, true
FROM generate_series(1, :nusers) g,
LATERAL (SELECT (ARRAY['Maria', 'Mark', 'Martin', 'Marta', 'Marco', 'Omar', 'Tamara', 'Anna',
                       'Joanna', 'Hanna', 'John', 'James', 'Robert', 'Michael', 'William',
                       'David', 'Richard', 'Joseph', 'Thomas', 'Charles', 'Linda', 'Barbara',
                       'Elizabeth', 'Jennifer', 'Susan', 'Jessica', 'Sarah', 'Karen', 'Nancy',
                       'Lisa', 'Betty', 'Sandra', 'Ashley', 'Emily', 'Donna', 'Michelle', 'Laura',
                       'Kevin', 'Brian', 'George', 'Edward', 'Ronald', 'Timothy', 'Jason', 'Jeffrey',
                       'Ryan', 'Jacob', 'Gary', 'Nicholas', 'Eric', 'Stephen', 'Jonathan', 'Larry',
                       'Justin', 'Scott', 'Brandon', 'Benjamin', 'Samuel', 'Gregory', 'Alexander',
                       'Patrick', 'Frank', 'Raymond', 'Ingrid'])[1 + g % 64] AS f,
               (ARRAY['Jensen', 'Hansen', 'Larsen', 'Olsen', 'Nielsen', 'Petersen', 'Andersen',
                      'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis',
                      'Rodriguez', 'Martinez', 'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson',
                      'Taylor', 'Moore', 'Jackson', 'Lee', 'Perez', 'Thompson', 'White', 'Harris',
                      'Clark', 'Ramirez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen', 'King',
                      'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green', 'Adams',
                      'Nelson', 'Baker'])[1 + (g / 64) % 48] AS l) n;

CREATE TEMP TABLE bench_seeded ON COMMIT DROP AS
SELECT id, row_number() OVER (ORDER BY email) AS n
FROM users WHERE email LIKE '%@seed.bench.example';

-- bench_alice is in 20 groups of 10 members (she is their admin).
INSERT INTO groups (name, description, creator_id)
SELECT 'Bench group ' || i, 'seeded by bench/run', :'a' FROM generate_series(1, 20) i;
INSERT INTO group_members (group_id, user_id, role)
SELECT id, :'a', 'admin' FROM groups WHERE creator_id = :'a';
INSERT INTO group_members (group_id, user_id)
SELECT g.id, s.id
FROM groups g
JOIN bench_seeded s ON s.n BETWEEN (substring(g.name from '[0-9]+$')::int - 1) * 9 + 1
                               AND substring(g.name from '[0-9]+$')::int * 9
WHERE g.creator_id = :'a';

-- For the fanout row (wsload fanout, once wsd fans group messages out): one
-- group of 1000 members, bench_bob its admin, bench_alice not in it.
INSERT INTO groups (name, description, creator_id)
VALUES ('Bench fanout', 'seeded by bench/run: 1000 members', :'b');
INSERT INTO group_members (group_id, user_id, role)
SELECT id, :'b', 'admin' FROM groups WHERE name = 'Bench fanout';
INSERT INTO group_members (group_id, user_id)
SELECT g.id, s.id FROM groups g JOIN bench_seeded s ON s.n BETWEEN 1 AND 999
WHERE g.name = 'Bench fanout';

-- 1000 messages between bench_alice and bench_bob, one a minute.
INSERT INTO messages (content, sender_id, receiver_id, created_at)
SELECT 'seeded message ' || i,
       CASE WHEN i % 2 = 0 THEN :'a'::uuid ELSE :'b'::uuid END,
       CASE WHEN i % 2 = 0 THEN :'b'::uuid ELSE :'a'::uuid END,
       now() - (1000 - i) * interval '1 minute'
FROM generate_series(1, 1000) i;

COMMIT;
ANALYZE;
