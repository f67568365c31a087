/**
 * Foreign keys and tenants: a foreign key is checked (and its ON DELETE / ON UPDATE action
 * run) as the owner of the table, without row level security. Each attack below has tenant 1,
 * bound under row level security (it reads none of tenant 2's rows), learn whether tenant 2
 * has invoice 5, or write tenant 2's rows, through a foreign key.
 *
 * Not reported before: a shared table (no tenant column) that the runtime role may write, with a
 * foreign key into a tenant table (`(owner, invoice_id) -> invoices (tenant_id, id)`): an insert
 * succeeds or fails on tenant 2's rows, deferred or not, into a partitioned table too; and a
 * tenant table's foreign key into a shared table the runtime role may delete or update, with a
 * cascading action: tenant 1 deleting or renaming a shared row deletes or rewrites tenant 2's.
 *
 * Not reported before either: the runtime role granted rights on a partition of the shared table
 * only (tenant 1 probes through an insert into the partition, or deletes from it and cascades
 * into tenant 2's rows), or on the partitioned table above a partition holding the key; and a
 * view with `security_invoker = t` was taken for one that runs as its owner, as was a view of
 * another table that only reads the shared table in a subquery (false alarms).
 *
 * Reported before, kept here as regressions: a foreign key between tenant tables that does not
 * pair the tenant columns, both as an oracle on insert and as an action across tenants (tenant
 * 1 deleting its own invoice is blocked by, or cascades into, tenant 2's payment). And the shapes
 * that hold tenants apart, reported nothing: a tenant table's key into a shared table, a
 * composite key pairing the tenant columns (with a cascade), a shared table's key the runtime
 * role may not write, and a nullable tenant column under MATCH SIMPLE (row level security
 * refuses the null tenant, so the unchecked reference never lands).
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runDoctor } from '../src/doctor/index.js'
import { enableRls } from '../src/schema/rls-apply.js'
import { grantRuntimeRole } from '../src/schema/roles.js'
import { installTenantTables } from '../src/tenants/index.js'
import { createTestDatabase, dropRoles, type TestDatabase } from './helpers/db.js'

const ROLE = `adv_fkor_${randomBytes(3).toString('hex')}`
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('adv_doctor_fk_oracle')
  await installTenantTables(db.pool, { idType: 'bigint' })
  await db.pool.query(`
    insert into tenants (id, slug, name) values (1, 'one', 'One'), (2, 'two', 'Two');
    create table invoices (tenant_id bigint not null references tenants (id), id bigint not null,
      primary key (tenant_id, id));
    insert into invoices values (1, 1), (2, 5);
    create table payments (tenant_id bigint not null references tenants (id), id bigint not null,
      other_tenant bigint, invoice_id bigint, currency text, primary key (tenant_id, id));
    create table pinvoices (tenant_id bigint not null references tenants (id), id bigint not null,
      primary key (tenant_id, id)) partition by list (tenant_id);
    create table pinvoices_1 partition of pinvoices for values in (1);
    create table pinvoices_2 partition of pinvoices for values in (2);
    insert into pinvoices values (2, 5);
    -- shared
    create table currencies (code text primary key);
    insert into currencies values ('EUR'), ('XYZ');
    create table bookmarks (id bigint generated always as identity primary key, owner bigint,
      invoice_id bigint);`)
  await enableRls(db.pool, [{ name: 'invoices' }, { name: 'payments' }, { name: 'pinvoices' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
}, 60_000)

afterAll(async () => {
  await db?.drop()
  await dropRoles([ROLE])
})

/**
 * Runs `statements` as the runtime role bound to `tenant` in one transaction, deferred
 * constraints checked at the end; the error, if any. Rolled back unless `commit`.
 */
async function asTenant(
  tenant: number,
  statements: readonly string[],
  commit = false,
): Promise<string | null> {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', $1, true)", [String(tenant)])
    for (const s of statements) await c.query(s)
    await c.query('set constraints all immediate')
    if (commit) await c.query('commit')
    return null
  } catch (e) {
    return (e as Error).message
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

/** The foreign-key findings with `ddl` made (and `drop` run after), `attack` run in between. */
async function fkFindingsWith(ddl: string, drop: string, attack: () => Promise<void>) {
  await db.pool.query(ddl)
  try {
    await attack()
    return (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
      .filter((f) => f.code.startsWith('FOREIGN_KEY_'))
      .map((f) => `${f.code} ${f.severity} ${f.object}`)
  } finally {
    await db.pool.query(drop)
  }
}

/** Whether tenant 1 learns that tenant 2 has invoice 5 (and not 6) by inserting into `insert`. */
async function probe(insert: (id: number) => string) {
  expect(await asTenant(1, ['select 1 from invoices where id = 5'])).toBeNull()
  expect(await asTenant(1, [insert(5)])).toBeNull()
  expect(await asTenant(1, [insert(6)])).toMatch(/violates foreign key constraint/)
}

it('tenant 1 sees none of tenant 2 rows', async () => {
  const c = await db.pool.connect()
  try {
    await c.query('begin')
    await c.query(`set local role "${ROLE}"`)
    await c.query("select set_config('rowtenancy.tenant_id', '1', true)")
    expect((await c.query('select * from invoices where tenant_id = 2')).rows).toEqual([])
    expect((await c.query('select * from pinvoices')).rows).toEqual([])
    expect((await c.query('select * from payments')).rows).toEqual([])
  } finally {
    await c.query('rollback')
    c.release()
  }
})

describe('a shared table the runtime role writes, with a foreign key into a tenant table', () => {
  const bookmark = (id: number) => `insert into bookmarks (owner, invoice_id) values (2, ${id})`
  const dropFk = 'alter table bookmarks drop constraint bookmarks_fk'

  it('a composite key (owner, invoice_id) -> invoices (tenant_id, id)', async () => {
    const found = await fkFindingsWith(
      'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id)',
      dropFk,
      () => probe(bookmark),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
  })

  it('deferred: the check at commit tells the same', async () => {
    const found = await fkFindingsWith(
      `alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id)
         references invoices (tenant_id, id) deferrable initially deferred`,
      dropFk,
      () => probe(bookmark),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
  })

  it('a key on the id alone (a unique index on invoices (id), reported on its own)', async () => {
    const found = await fkFindingsWith(
      `create unique index invoices_id on invoices (id);
       alter table bookmarks add constraint bookmarks_fk foreign key (invoice_id) references invoices (id)`,
      `${dropFk}; drop index invoices_id`,
      () => probe((id) => `insert into bookmarks (invoice_id) values (${id})`),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
  })

  it('into a partitioned tenant table: one finding, on the key the user made', async () => {
    const found = await fkFindingsWith(
      'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references pinvoices (tenant_id, id)',
      dropFk,
      async () => {
        expect(await asTenant(1, [bookmark(5)])).toBeNull()
        expect(await asTenant(1, [bookmark(6)])).toMatch(/violates foreign key constraint/)
        // a partition audited alone: the key's internal copy into it is reported
        const alone = await runDoctor(db.pool, { runtimeRole: ROLE, tables: ['pinvoices_2'] })
        expect(
          alone.findings.filter((f) => f.code.startsWith('FOREIGN_KEY_')).map((f) => f.object),
        ).toEqual([expect.stringMatching(/^public\.bookmarks\.bookmarks_\w+_fkey\d*$/)])
      },
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
  })

  it('the runtime role may update the key columns only', async () => {
    await db.pool.query(`revoke insert, update on bookmarks from "${ROLE}";
      grant update (invoice_id) on bookmarks to "${ROLE}";
      insert into bookmarks (owner, invoice_id) values (2, null)`)
    try {
      const found = await fkFindingsWith(
        'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id)',
        dropFk,
        async () => {
          const set = (id: number) => `update bookmarks set invoice_id = ${id}`
          expect(await asTenant(1, [set(5)])).toBeNull()
          expect(await asTenant(1, [set(6)])).toMatch(/violates foreign key constraint/)
        },
      )
      expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
    } finally {
      await db.pool.query(`delete from bookmarks; grant insert, update on bookmarks to "${ROLE}"`)
    }
  })

  it('the runtime role writes the shared table through a view (its owner writes it)', async () => {
    await db.pool.query(`revoke insert, update on bookmarks from "${ROLE}";
      create view bookmarks_v as select owner, invoice_id from bookmarks;
      create view bookmarks_invoker with (security_invoker = true) as select owner, invoice_id from bookmarks;
      grant select, insert on bookmarks_v, bookmarks_invoker to "${ROLE}"`)
    try {
      const found = await fkFindingsWith(
        'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id)',
        dropFk,
        async () => {
          const through = (view: string) => (id: number) =>
            `insert into ${view} (owner, invoice_id) values (2, ${id})`
          expect(await asTenant(1, [through('bookmarks_invoker')(5)])).toMatch(/permission denied/)
          expect(await asTenant(1, [through('bookmarks_v')(5)])).toBeNull()
          expect(await asTenant(1, [through('bookmarks_v')(6)])).toMatch(
            /violates foreign key constraint/,
          )
          await db.pool.query('drop view bookmarks_v')
          const invokerOnly = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
          expect(invokerOnly.filter((f) => f.code.startsWith('FOREIGN_KEY_'))).toEqual([])
          await db.pool.query(`create view bookmarks_v as select owner, invoice_id from bookmarks;
            grant select, insert on bookmarks_v to "${ROLE}"`)
        },
      )
      expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
    } finally {
      await db.pool.query(`drop view bookmarks_v, bookmarks_invoker;
        grant insert, update on bookmarks to "${ROLE}"`)
    }
  })

  it('no finding when the runtime role may not write the shared table', async () => {
    await db.pool.query(`revoke insert, update on bookmarks from "${ROLE}"`)
    try {
      const found = await fkFindingsWith(
        'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id)',
        dropFk,
        async () => {
          expect(await asTenant(1, [bookmark(5)])).toMatch(/permission denied/)
        },
      )
      expect(found).toEqual([])
    } finally {
      await db.pool.query(`grant insert, update on bookmarks to "${ROLE}"`)
    }
  })
})

describe('a tenant table with a foreign key into a shared table', () => {
  const dropFk = 'alter table payments drop constraint payments_currency_fk'
  const withPayment = async (attack: () => Promise<void>) => {
    await db.pool.query(`insert into payments (tenant_id, id, currency) values (2, 1, 'XYZ')`)
    try {
      await attack()
    } finally {
      await db.pool.query(
        `delete from payments; insert into currencies values ('XYZ') on conflict do nothing`,
      )
    }
  }
  const tenant2Currencies = async () =>
    (await db.pool.query('select currency from payments where tenant_id = 2')).rows.map(
      (r) => r.currency,
    )

  it('on delete cascade: tenant 1 deleting a shared row deletes tenant 2 rows', async () => {
    const found = await fkFindingsWith(
      'alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on delete cascade',
      dropFk,
      () =>
        withPayment(async () => {
          expect(await asTenant(1, ["delete from currencies where code = 'XYZ'"], true)).toBeNull()
          expect(await tenant2Currencies()).toEqual([])
        }),
    )
    expect(found).toEqual([
      'FOREIGN_KEY_ACTION_ACROSS_TENANTS error public.payments.payments_currency_fk',
    ])
  })

  it('on update cascade: tenant 1 renaming a shared row rewrites tenant 2 rows', async () => {
    const found = await fkFindingsWith(
      'alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on update cascade on delete restrict',
      dropFk,
      () =>
        withPayment(async () => {
          expect(
            await asTenant(1, ["update currencies set code = 'XY2' where code = 'XYZ'"], true),
          ).toBeNull()
          expect(await tenant2Currencies()).toEqual(['XY2'])
          await db.pool.query("update currencies set code = 'XYZ' where code = 'XY2'")
        }),
    )
    expect(found).toEqual([
      'FOREIGN_KEY_ACTION_ACROSS_TENANTS error public.payments.payments_currency_fk',
    ])
  })

  it('on delete set null, the runtime role deleting through a view of the shared table', async () => {
    await db.pool.query(`revoke delete, update on currencies from "${ROLE}";
      create view currencies_v as select code from currencies;
      grant select, delete on currencies_v to "${ROLE}"`)
    try {
      const found = await fkFindingsWith(
        'alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on delete set null',
        dropFk,
        () =>
          withPayment(async () => {
            expect(
              await asTenant(1, ["delete from currencies_v where code = 'XYZ'"], true),
            ).toBeNull()
            expect(await tenant2Currencies()).toEqual([null])
          }),
      )
      expect(found).toEqual([
        'FOREIGN_KEY_ACTION_ACROSS_TENANTS error public.payments.payments_currency_fk',
      ])
    } finally {
      await db.pool.query(`drop view currencies_v; grant delete, update on currencies to "${ROLE}"`)
    }
  })

  it('no finding for a cascade when the runtime role may not delete or update the shared table', async () => {
    await db.pool.query(`revoke delete, update on currencies from "${ROLE}"`)
    try {
      const found = await fkFindingsWith(
        'alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on delete set null on update cascade',
        dropFk,
        async () => {
          expect(await asTenant(1, ["delete from currencies where code = 'XYZ'"])).toMatch(
            /permission denied/,
          )
        },
      )
      expect(found).toEqual([])
    } finally {
      await db.pool.query(`grant delete, update on currencies to "${ROLE}"`)
    }
  })

  it('no finding for a plain key: inserting tells nothing of other tenants', async () => {
    const found = await fkFindingsWith(
      'alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code)',
      dropFk,
      async () => {
        expect(
          await asTenant(1, [
            "insert into payments (tenant_id, id, currency) values (1, 1, 'EUR')",
          ]),
        ).toBeNull()
      },
    )
    expect(found).toEqual([])
  })
})

describe('foreign keys between tenant tables', () => {
  const dropFk = 'alter table payments drop constraint payments_invoice_fk'

  it('(covered before) not pairing the tenant columns: an oracle on insert', async () => {
    const found = await fkFindingsWith(
      'alter table payments add constraint payments_invoice_fk foreign key (other_tenant, invoice_id) references invoices (tenant_id, id)',
      dropFk,
      () =>
        probe(
          (id) =>
            `insert into payments (tenant_id, id, other_tenant, invoice_id) values (1, 1, 2, ${id})`,
        ),
    )
    expect(found).toEqual(['FOREIGN_KEY_WITHOUT_TENANT error public.payments.payments_invoice_fk'])
  })

  for (const action of ['no action', 'cascade']) {
    it(`(covered before) not pairing the tenant columns, on delete ${action}: tenant 1 deleting its own invoice reaches tenant 2`, async () => {
      const found = await fkFindingsWith(
        `alter table payments add constraint payments_invoice_fk foreign key (other_tenant, invoice_id)
           references invoices (tenant_id, id) on delete ${action};
         insert into payments (tenant_id, id, other_tenant, invoice_id) values (2, 1, 1, 1)`,
        `delete from payments; ${dropFk}; insert into invoices values (1, 1) on conflict do nothing`,
        async () => {
          const err = await asTenant(1, ['delete from invoices where id = 1'], true)
          if (action === 'no action') expect(err).toMatch(/violates foreign key constraint/)
          else {
            expect(err).toBeNull()
            expect((await db.pool.query('select * from payments')).rows).toEqual([])
          }
        },
      )
      expect(found).toEqual([
        'FOREIGN_KEY_WITHOUT_TENANT error public.payments.payments_invoice_fk',
      ])
    })
  }

  it('no finding for (tenant_id, invoice_id) -> (tenant_id, id), on delete cascade', async () => {
    const found = await fkFindingsWith(
      `alter table payments add constraint payments_invoice_fk foreign key (tenant_id, invoice_id)
         references invoices (tenant_id, id) on delete cascade`,
      dropFk,
      async () => {
        const pay = (id: number) =>
          `insert into payments (tenant_id, id, invoice_id) values (1, 1, ${id})`
        expect(await asTenant(1, [pay(5)])).toMatch(/violates foreign key constraint/)
        expect(await asTenant(1, [pay(6)])).toMatch(/violates foreign key constraint/)
        expect(await asTenant(1, [pay(1)])).toBeNull()
      },
    )
    expect(found).toEqual([])
  })

  it('MATCH SIMPLE over a nullable tenant column: row level security refuses the null tenant', async () => {
    await db.pool.query(`create table notes (tenant_id bigint references tenants (id), id bigint not null,
      invoice_id bigint, foreign key (tenant_id, invoice_id) references invoices (tenant_id, id))`)
    await enableRls(db.pool, [{ name: 'notes' }])
    await grantRuntimeRole(db.pool, { role: ROLE })
    try {
      expect(
        await asTenant(1, ['insert into notes (tenant_id, id, invoice_id) values (null, 1, 5)']),
      ).toMatch(/violates row-level security policy/)
      const report = await runDoctor(db.pool, { runtimeRole: ROLE })
      const notes = report.findings.filter((f) => f.object.startsWith('public.notes'))
      expect(notes.map((f) => `${f.code} ${f.object}`)).toEqual([
        'TENANT_COLUMN_NULLABLE public.notes.tenant_id',
      ])
    } finally {
      await db.pool.query('drop table notes')
    }
  })
})

describe('partitions: the runtime role writes a partition of the shared table, or the table above it', () => {
  it('a partitioned shared table, the runtime role inserting into a partition only', async () => {
    const found = await fkFindingsWith(
      `create table shared_p (id bigint, owner bigint, invoice_id bigint,
         constraint shared_p_fk foreign key (owner, invoice_id) references invoices (tenant_id, id))
         partition by range (id);
       create table shared_p1 partition of shared_p for values from (0) to (1000);
       revoke all on shared_p, shared_p1 from "${ROLE}";
       grant insert on shared_p1 to "${ROLE}"`,
      'drop table shared_p',
      async () => {
        const into = (table: string) => (id: number) =>
          `insert into ${table} (id, owner, invoice_id) values (1, 2, ${id})`
        expect(await asTenant(1, [into('shared_p')(5)])).toMatch(/permission denied/)
        await probe(into('shared_p1'))
      },
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.shared_p.shared_p_fk'])
  })

  it('through a view over the partition', async () => {
    const found = await fkFindingsWith(
      `create table shared_p (id bigint, owner bigint, invoice_id bigint,
         constraint shared_p_fk foreign key (owner, invoice_id) references invoices (tenant_id, id))
         partition by range (id);
       create table shared_p1 partition of shared_p for values from (0) to (1000);
       revoke all on shared_p, shared_p1 from "${ROLE}";
       create view shared_p1_v as select * from shared_p1;
       grant insert on shared_p1_v to "${ROLE}"`,
      'drop view shared_p1_v; drop table shared_p',
      () => probe((id) => `insert into shared_p1_v (id, owner, invoice_id) values (1, 2, ${id})`),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.shared_p.shared_p_fk'])
  })

  it('the key on a partition only, the runtime role inserting into the partitioned table', async () => {
    const found = await fkFindingsWith(
      `create table shared_p (id bigint, owner bigint, invoice_id bigint) partition by range (id);
       create table shared_p1 partition of shared_p for values from (0) to (1000);
       alter table shared_p1 add constraint shared_p1_fk foreign key (owner, invoice_id) references invoices (tenant_id, id);
       revoke all on shared_p, shared_p1 from "${ROLE}";
       grant insert on shared_p to "${ROLE}"`,
      'drop table shared_p',
      () => probe((id) => `insert into shared_p (id, owner, invoice_id) values (1, 2, ${id})`),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.shared_p1.shared_p1_fk'])
  })

  it('inheritance: the key on a child, the runtime role updating through the parent (an insert into the parent stays there)', async () => {
    const ddl = `create table shared_i (id bigint, owner bigint, invoice_id bigint);
       create table shared_i1 (constraint shared_i1_fk foreign key (owner, invoice_id)
         references invoices (tenant_id, id)) inherits (shared_i);
       insert into shared_i1 values (1, 2, null);
       revoke all on shared_i, shared_i1 from "${ROLE}"`
    const insertOnly = await fkFindingsWith(
      `${ddl}; grant insert on shared_i to "${ROLE}"`,
      'drop table shared_i cascade',
      async () => {
        expect(await asTenant(1, ['insert into shared_i values (1, 2, 6)'])).toBeNull()
      },
    )
    expect(insertOnly).toEqual([])
    const found = await fkFindingsWith(
      `${ddl}; grant select, update on shared_i to "${ROLE}"`,
      'drop table shared_i cascade',
      () => probe((id) => `update shared_i set invoice_id = ${id} where id = 1`),
    )
    expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.shared_i1.shared_i1_fk'])
  })

  it('no finding for an inheritance child of the shared table: the key is not inherited, an insert into the child is not checked', async () => {
    const found = await fkFindingsWith(
      `create table shared_i (id bigint, owner bigint, invoice_id bigint,
         constraint shared_i_fk foreign key (owner, invoice_id) references invoices (tenant_id, id));
       create table shared_i1 () inherits (shared_i);
       revoke all on shared_i, shared_i1 from "${ROLE}";
       grant insert, update on shared_i1 to "${ROLE}"`,
      'drop table shared_i cascade',
      async () => {
        const into = (id: number) => `insert into shared_i1 values (1, 2, ${id})`
        expect(await asTenant(1, [into(5)])).toBeNull()
        expect(await asTenant(1, [into(6)])).toBeNull()
      },
    )
    expect(found).toEqual([])
  })

  it('on delete cascade into a partitioned shared table, the runtime role deleting from a partition only', async () => {
    await db.pool.query(`create table cat (id bigint primary key) partition by range (id);
      create table cat1 partition of cat for values from (0) to (1000);
      insert into cat values (7);
      create table notes (tenant_id bigint not null references tenants (id), id bigint not null,
        cat_id bigint, primary key (tenant_id, id),
        constraint notes_cat_fk foreign key (cat_id) references cat (id) on delete cascade);
      insert into notes values (2, 1, 7)`)
    await enableRls(db.pool, [{ name: 'notes' }])
    await grantRuntimeRole(db.pool, { role: ROLE })
    try {
      const found = await fkFindingsWith(
        `revoke all on cat, cat1 from "${ROLE}"; grant select, delete on cat1 to "${ROLE}"`,
        'select 1',
        async () => {
          expect(await asTenant(1, ['select 1 from notes'])).toBeNull()
          expect(await asTenant(1, ['delete from cat where id = 7'])).toMatch(/permission denied/)
          expect(await asTenant(1, ['delete from cat1 where id = 7'], true)).toBeNull()
          expect((await db.pool.query('select * from notes')).rows).toEqual([])
        },
      )
      expect(found).toEqual(['FOREIGN_KEY_ACTION_ACROSS_TENANTS error public.notes.notes_cat_fk'])
    } finally {
      await db.pool.query('drop table notes, cat')
    }
  })
})

describe('views: a view writes the one relation it selects from, or what its rules write', () => {
  const addFk =
    'alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id)'
  const dropFk = 'alter table bookmarks drop constraint bookmarks_fk'
  const withoutWrites = async (body: () => Promise<void>) => {
    await db.pool.query(`revoke insert, update on bookmarks from "${ROLE}";
      create table other (id bigint primary key, s_id bigint)`)
    try {
      await body()
    } finally {
      await db.pool.query(
        `drop table other cascade; grant insert, update on bookmarks to "${ROLE}"`,
      )
    }
  }

  it('no finding for an updatable view of another table that reads the shared table in a subquery', async () => {
    await withoutWrites(async () => {
      const found = await fkFindingsWith(
        `${addFk}; create view other_v as select * from other where s_id in (select id from bookmarks);
         grant select, insert, update, delete on other_v to "${ROLE}"`,
        `${dropFk}; drop view other_v`,
        async () => {
          expect(await asTenant(1, ['insert into other_v values (1, 5)'])).toBeNull()
          expect(
            await asTenant(1, ['insert into bookmarks (owner, invoice_id) values (2, 5)']),
          ).toMatch(/permission denied/)
        },
      )
      expect(found).toEqual([])
    })
  })

  it('a view of the shared table that reads another table in a subquery is reported', async () => {
    await withoutWrites(async () => {
      const found = await fkFindingsWith(
        `${addFk}; create view bookmarks_v as select owner, invoice_id from bookmarks
           where not exists (select from other where other.s_id = bookmarks.id);
         grant select, insert on bookmarks_v to "${ROLE}"`,
        `${dropFk}; drop view bookmarks_v`,
        () => probe((id) => `insert into bookmarks_v (owner, invoice_id) values (2, ${id})`),
      )
      expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
    })
  })

  it('a view of another table with an INSTEAD rule that writes the shared table is reported', async () => {
    await withoutWrites(async () => {
      const found = await fkFindingsWith(
        `${addFk}; create view other_v as select * from other;
         create rule other_v_insert as on insert to other_v do instead
           insert into bookmarks (owner, invoice_id) values (new.id, new.s_id);
         grant select, insert on other_v to "${ROLE}"`,
        `${dropFk}; drop view other_v`,
        () => probe((id) => `insert into other_v values (2, ${id})`),
      )
      expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
    })
  })

  for (const value of ['t', "'on'", '1', "'tr'"]) {
    it(`a view with security_invoker = ${value} writes as the caller: no finding`, async () => {
      await withoutWrites(async () => {
        const found = await fkFindingsWith(
          `${addFk}; create view bookmarks_v with (security_invoker = ${value}) as select owner, invoice_id from bookmarks;
           grant select, insert on bookmarks_v to "${ROLE}"`,
          `${dropFk}; drop view bookmarks_v`,
          async () => {
            expect(
              await asTenant(1, ['insert into bookmarks_v (owner, invoice_id) values (2, 5)']),
            ).toMatch(/permission denied/)
          },
        )
        expect(found).toEqual([])
      })
    })
  }

  it('a view with security_invoker = false writes as its owner: reported', async () => {
    await withoutWrites(async () => {
      const found = await fkFindingsWith(
        `${addFk}; create view bookmarks_v with (security_invoker = false) as select owner, invoice_id from bookmarks;
         grant select, insert on bookmarks_v to "${ROLE}"`,
        `${dropFk}; drop view bookmarks_v`,
        () => probe((id) => `insert into bookmarks_v (owner, invoice_id) values (2, ${id})`),
      )
      expect(found).toEqual(['FOREIGN_KEY_FROM_SHARED_TABLE error public.bookmarks.bookmarks_fk'])
    })
  })
})

it('without a runtime role to audit, every shared key is reported; a cascade from tenants is left to the directory check', async () => {
  await db.pool.query(`revoke insert, update, delete on bookmarks, currencies from "${ROLE}";
    alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id);
    alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on delete cascade;
    alter table payments add constraint payments_tenant_fk foreign key (tenant_id) references tenants (id) on delete cascade`)
  try {
    const keys = async (runtimeRole?: string) =>
      (await runDoctor(db.pool, { runtimeRole })).findings
        .filter((f) => f.code.startsWith('FOREIGN_KEY_'))
        .map((f) => `${f.code} ${f.object}`)
    expect(await keys(ROLE)).toEqual([])
    expect(await keys()).toEqual([
      'FOREIGN_KEY_ACTION_ACROSS_TENANTS public.payments.payments_currency_fk',
      'FOREIGN_KEY_FROM_SHARED_TABLE public.bookmarks.bookmarks_fk',
    ])
  } finally {
    await db.pool.query(`alter table bookmarks drop constraint bookmarks_fk;
      alter table payments drop constraint payments_currency_fk, drop constraint payments_tenant_fk;
      grant insert, update, delete on bookmarks, currencies to "${ROLE}"`)
  }
})

it('the findings say what is wrong and how to fix it', async () => {
  await db.pool.query(`alter table bookmarks add constraint bookmarks_fk foreign key (owner, invoice_id) references invoices (tenant_id, id);
    alter table payments add constraint payments_currency_fk foreign key (currency) references currencies (code) on delete set null on update cascade`)
  try {
    const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings.filter((f) =>
      f.code.startsWith('FOREIGN_KEY_'),
    )
    expect(found.map((f) => [f.code, f.message, f.fix])).toEqual([
      [
        'FOREIGN_KEY_ACTION_ACROSS_TENANTS',
        expect.stringContaining(
          'has on delete set null, on update cascade, and the runtime role may delete and update rows of public.currencies',
        ),
        `Recreate the key without the action (no action, the default), or keep public.currencies to the owner: revoke delete, update on public.currencies from "${ROLE}"`,
      ],
      [
        'FOREIGN_KEY_FROM_SHARED_TABLE',
        expect.stringContaining('tells whether another tenant has that key'),
        `Make public.bookmarks tenant-aware (add tenant_id, row level security, and foreign key (tenant_id, ...) references public.invoices (tenant_id, id)), or keep it to the owner: revoke insert, update on public.bookmarks from "${ROLE}"`,
      ],
    ])
  } finally {
    await db.pool.query(`alter table bookmarks drop constraint bookmarks_fk;
      alter table payments drop constraint payments_currency_fk`)
  }
})

it('a partitioned tenant table with an unpaired key into a partitioned one: one finding, on the key the user made (not one per internal copy on a partition)', async () => {
  await db.pool.query(`create table ppay (tenant_id bigint not null references tenants (id), id bigint not null,
      other_tenant bigint, invoice_id bigint, primary key (tenant_id, id)) partition by list (tenant_id);
    create table ppay_1 partition of ppay for values in (1);
    create table ppay_2 partition of ppay for values in (2);
    alter table ppay add constraint ppay_fk foreign key (other_tenant, invoice_id) references pinvoices (tenant_id, id)`)
  await enableRls(db.pool, [{ name: 'ppay' }])
  await grantRuntimeRole(db.pool, { role: ROLE })
  try {
    const pay = (id: number) =>
      `insert into ppay (tenant_id, id, other_tenant, invoice_id) values (1, 1, 2, ${id})`
    expect(await asTenant(1, [pay(5)])).toBeNull()
    expect(await asTenant(1, [pay(6)])).toMatch(/violates foreign key constraint/)
    const found = (await runDoctor(db.pool, { runtimeRole: ROLE })).findings
      .filter((f) => f.code.startsWith('FOREIGN_KEY_'))
      .map((f) => `${f.code} ${f.object}`)
    expect(found).toEqual(['FOREIGN_KEY_WITHOUT_TENANT public.ppay.ppay_fk'])
  } finally {
    await db.pool.query('drop table ppay')
  }
})
