//! How fast dispatch finds the nearest available drivers among 100,000 spread over Seoul: the
//! query every offer makes of the drivers table (`nearby.rs`), on SQLite and on PostgreSQL.
//!
//! `cargo bench -p tanda-dispatch --bench nearest`. PostgreSQL is the one at
//! `TANDA_BENCH_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`), in a database of the
//! bench's own; without one it is left out and said so. Before timing, each engine's answers are
//! checked against a scan of every driver, so the figures are for the right answer.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tanda_core::db::Durability;
use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;
use tanda_core::sql::{AssertSqlSafe, query};
use tanda_core::{Db, SystemClock, Uow};
use tanda_dispatch::{MIGRATIONS, nearest_available};
use tokio::runtime::Runtime;

const DRIVERS: usize = 100_000;
/// What `store::CANDIDATES` asks for on each offer.
const CANDIDATES: usize = 8;
/// Pickups cycled through, so successive searches touch different parts of the index.
const PICKUPS: usize = 4096;
/// Drivers who already turned the dispatch down, in the "declined" case.
const DECLINED: usize = 3;
const CHECKS: usize = 50;
/// Dispatch's default pickup radius: only drivers this close are candidates.
const RADIUS_M: f64 = 5_000.0;
/// Rows to an `INSERT` while seeding.
const BATCH: usize = 1_000;

fn seoul(rng: &mut StdRng) -> LatLng {
    LatLng::parse(
        rng.random_range(37.45..37.70),
        rng.random_range(126.80..127.20),
    )
    .expect("Seoul is on Earth")
}

fn driver_id(n: usize) -> ClientId {
    ClientId::parse(&format!("driver-{n}")).expect("a valid id")
}

struct Fixture {
    drivers: Vec<(ClientId, LatLng)>,
    pickups: Vec<LatLng>,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(1);
        Self {
            drivers: (0..DRIVERS)
                .map(|n| (driver_id(n), seoul(&mut rng)))
                .collect(),
            pickups: (0..PICKUPS).map(|_| seoul(&mut rng)).collect(),
        }
    }

    /// The `n` drivers nearest to `to`, found by looking at every one of them.
    fn scan(&self, to: LatLng, n: usize) -> Vec<ClientId> {
        let mut by_distance: Vec<(f64, &ClientId)> = self
            .drivers
            .iter()
            .map(|(id, at)| (at.distance_m(to), id))
            .collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        by_distance
            .into_iter()
            .take(n)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

/// One engine's database, holding the fixture's drivers, all available.
async fn seed(db: &Db, f: &Fixture) {
    db.migrate(MIGRATIONS).await.expect("migrated");
    let mut uow = db.begin().await.expect("a unit of work");
    for batch in f.drivers.chunks(BATCH) {
        let rows: Vec<String> = (0..batch.len())
            .map(|i| {
                format!(
                    "(${}, 'D', '12가3456', '010-1234-5678', ${}, ${}, 'AVAILABLE', 0, 0, 1)",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO drivers (id, name, car_number, phone, lat, lng, status, created_at, updated_at, version) VALUES {}",
            rows.join(", ")
        );
        let mut insert = query(AssertSqlSafe(sql));
        for (id, at) in batch {
            insert = insert.bind(id.as_str()).bind(at.lat).bind(at.lng);
        }
        insert.execute(uow.conn()).await.expect("drivers inserted");
    }
    uow.commit().await.expect("committed");
    let analyze = query("ANALYZE");
    analyze.execute(db.reader()).await.expect("analysed");
}

/// What dispatch does when it offers a ride (`Store::offer_nearest_driver`).
async fn candidates(uow: &mut Uow, pickup: LatLng, refused: &BTreeSet<ClientId>) -> Vec<ClientId> {
    nearest_available(&mut uow.conn().into(), pickup, RADIUS_M, CANDIDATES, |d| {
        refused.contains(d)
    })
    .await
    .expect("the search answers")
}

/// Panics unless the search agrees with a scan, with and without declined drivers.
async fn check(uow: &mut Uow, f: &Fixture) {
    for pickup in f.pickups.iter().take(CHECKS) {
        let expected = f.scan(*pickup, DECLINED + CANDIDATES);
        let none = candidates(uow, *pickup, &BTreeSet::new()).await;
        let declined: BTreeSet<_> = expected[..DECLINED].iter().cloned().collect();
        let skipping = candidates(uow, *pickup, &declined).await;
        // The search stops at the radius where it first finds someone: it may return fewer
        // than asked, never others.
        assert!(
            !none.is_empty() && expected.starts_with(&none),
            "nearest to {pickup:?}"
        );
        assert!(
            !skipping.is_empty() && expected[DECLINED..].starts_with(&skipping),
            "nearest to {pickup:?} but {declined:?}"
        );
    }
}

fn bench_engine(c: &mut Criterion, rt: &Runtime, f: &Fixture, engine: &str, db: &Db) {
    rt.block_on(seed(db, f));
    let mut uow = rt.block_on(db.begin()).expect("a unit of work");
    rt.block_on(check(&mut uow, f));
    let declined: Vec<BTreeSet<ClientId>> = f
        .pickups
        .iter()
        .map(|p| f.scan(*p, DECLINED).into_iter().collect())
        .collect();
    let mut group = c.benchmark_group(format!("nearest among 100k, {engine}"));
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let nobody = BTreeSet::new();
    let mut i = 0;
    group.bench_function("offer: 8 candidates", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            rt.block_on(candidates(&mut uow, black_box(f.pickups[i]), &nobody))
        });
    });
    group.bench_function("offer: 8 candidates, nearest 3 declined", |b| {
        b.iter(|| {
            i = (i + 1) % PICKUPS;
            rt.block_on(candidates(&mut uow, black_box(f.pickups[i]), &declined[i]))
        });
    });
    group.finish();
    // A PostgreSQL connection goes back to its pool on the runtime.
    rt.block_on(async move { drop(uow) });
}

fn nearest(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let f = Fixture::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = rt
        .block_on(Db::open_sqlite(
            dir.path(),
            "dispatch",
            Durability::Normal,
            Arc::new(SystemClock),
        ))
        .expect("SQLite opens");
    bench_engine(c, &rt, &f, "SQLite", &sqlite);

    let server = std::env::var("TANDA_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    match rt.block_on(fresh_postgres(&server)) {
        Ok(db) => {
            bench_engine(c, &rt, &f, "PostgreSQL", &db);
            rt.block_on(db.close());
            rt.block_on(drop_database(&server))
                .expect("the bench's database dropped");
        }
        Err(e) => eprintln!("PostgreSQL left out: {e}"),
    }
}

const PG_DATABASE: &str = "tanda_bench_nearest";

/// An empty database of the bench's own on the server at `server`.
async fn fresh_postgres(server: &str) -> Result<Db, tanda_core::DbError> {
    drop_database(server).await?;
    let url = Db::ensure_postgres_database(server, PG_DATABASE).await?;
    Db::open_postgres(&url, PG_DATABASE, 2, Arc::new(SystemClock)).await
}

async fn drop_database(server: &str) -> Result<(), tanda_core::DbError> {
    let url = Db::postgres_database_url(server, "postgres")?;
    let admin = Db::open_postgres(&url, "postgres", 1, Arc::new(SystemClock)).await?;
    query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"
    )))
    .execute(admin.reader())
    .await?;
    admin.close().await;
    Ok(())
}

criterion_group!(benches, nearest);
criterion_main!(benches);
