//! The domain's examples, and a randomized run of whole fleets checking its invariants.

use super::*;

const T0: Timestamp = 1_800_000_000_000;

fn rules() -> Rules {
    Rules {
        offer_timeout: Duration::from_secs(15),
        deadline: Duration::from_secs(60),
        fare: Fare::default(),
        speed_kmh: 25.0,
    }
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn at(lat: f64, lng: f64) -> LatLng {
    LatLng::parse(lat, lng).unwrap()
}

/// Metres per degree of latitude on the mean sphere.
const M_PER_DEG: f64 = tanda_core::geo::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

fn place(name: &str, at: LatLng) -> Place {
    Place {
        name: name.into(),
        at,
    }
}

fn pickup() -> LatLng {
    at(37.5663, 126.9779)
}

/// Drives a fleet by hand: every command is decided and applied, rejections change nothing.
struct World {
    fleet: Fleet,
    now: Timestamp,
}

impl World {
    fn new() -> Self {
        Self {
            fleet: Fleet::default(),
            now: T0,
        }
    }

    fn run(&mut self, command: Command) -> Result<Vec<Event>, Rejection> {
        let events = decide(&self.fleet, &rules(), command, self.now)?;
        for e in &events {
            apply(&mut self.fleet, e);
        }
        Ok(events)
    }

    fn ok(&mut self, command: Command) -> Vec<Event> {
        self.run(command).expect("accepted")
    }

    fn rejected(&mut self, command: Command) -> Rejection {
        let before = self.fleet.clone();
        let r = self.run(command).expect_err("rejected");
        assert_eq!(self.fleet, before, "a rejection changes nothing");
        r
    }

    fn driver(&self, d: &str) -> &Driver {
        &self.fleet.drivers[&id(d)]
    }

    fn dispatch(&self) -> &Dispatch {
        &self.fleet.dispatches["x1"]
    }

    fn online(&mut self, d: &str, location: LatLng) {
        self.ok(Command::RegisterDriver(NewDriver {
            id: id(d),
            name: format!("Driver {d}"),
            car_number: "12가3456".into(),
            phone: "010-1234-5678".into(),
            location,
        }));
        self.ok(Command::GoOnline { driver_id: id(d) });
    }

    /// Books dispatch `x1` for booking `b1`, from the pickup to ~2.5 km north.
    fn book(&mut self) {
        self.book_answered_by(None);
    }

    /// Books `x1`, whose answer book gives by `answer_by`.
    fn book_answered_by(&mut self, answer_by: Option<Timestamp>) -> Vec<Event> {
        self.ok(Command::Open(NewDispatch {
            id: "x1".into(),
            book_id: "b1".into(),
            customer_id: "c1".into(),
            booking: Booking {
                card_token: "tok".into(),
                pickup: place("City Hall", pickup()),
                dropoff: place("North", at(37.5663 + 2500.0 / M_PER_DEG, 126.9779)),
            },
            answer_by,
        }))
    }

    fn replace_card_of_unknown(&mut self) -> Vec<Event> {
        self.ok(Command::ReplaceCard {
            book_id: "b-unknown".into(),
            card_token: "tok".into(),
        })
    }

    fn expire(&mut self) -> Vec<Event> {
        self.ok(Command::Expire {
            book_id: "b1".into(),
        })
    }

    fn replace_card(&mut self, card_token: &str) -> Vec<Event> {
        self.ok(Command::ReplaceCard {
            book_id: "b1".into(),
            card_token: card_token.into(),
        })
    }

    /// The charge of `card_token` was declined.
    fn declined(&mut self, d: &str, card_token: &str) -> Vec<Event> {
        self.ok(Command::RecordDecline {
            dispatch_id: "x1".into(),
            driver_id: id(d),
            card_token: card_token.into(),
            fare: 5400,
            reason: "the card was declined (card_declined)".into(),
        })
    }

    fn offer(&mut self, d: &str) -> Vec<Event> {
        self.ok(Command::Offer {
            dispatch_id: "x1".into(),
            driver_id: id(d),
        })
    }

    fn accept(&mut self, d: &str) -> Result<Vec<Event>, Rejection> {
        self.run(Command::Accept {
            dispatch_id: "x1".into(),
            driver_id: id(d),
        })
    }

    fn start(&mut self, d: &str) -> Result<Vec<Event>, Rejection> {
        self.run(Command::Start {
            dispatch_id: "x1".into(),
            driver_id: id(d),
        })
    }

    fn end(&mut self, d: &str) -> Result<Vec<Event>, Rejection> {
        self.run(Command::End {
            dispatch_id: "x1".into(),
            driver_id: id(d),
            trip: PaidTrip {
                distance_meters: 2500,
                fare: 4800 + 100 * 6,
                pay_id: "p1".into(),
                method: Settlement::Card,
            },
        })
    }

    fn cancel(&mut self) -> Vec<Event> {
        self.ok(Command::Cancel {
            book_id: "b1".into(),
            customer_id: "c1".into(),
            unseen_id: "x-unseen".into(),
        })
    }

    /// `a` available at the pickup, booked, offered to `a` and accepted.
    fn dispatched() -> Self {
        let mut w = Self::new();
        w.online("a", pickup());
        w.book();
        w.offer("a");
        w.accept("a").unwrap();
        w
    }
}

// ---- fare and arrival time ----------------------------------------------------------------

#[test]
fn fare_examples() {
    let fare = Fare::default();
    assert_eq!(fare.for_distance(0), 4800);
    assert_eq!(fare.for_distance(1600), 4800);
    assert_eq!(fare.for_distance(1730), 4800);
    assert_eq!(fare.for_distance(1731), 4900);
    assert_eq!(fare.for_distance(10_000), 4800 + 100 * (8400 / 131));
    assert_eq!(fare.for_distance(10_000), 11_200);
}

#[test]
fn eta_is_straight_line_distance_at_the_configured_speed_rounded_up() {
    let from = at(37.5, 127.0);
    assert_eq!(rules().eta_seconds(from, from), 0);
    // 990 m at 25 km/h (6.94 m/s) is 142.56 s.
    let to = at(37.5 + 990.0 / M_PER_DEG, 127.0);
    assert_eq!(rules().eta_seconds(from, to), 143);
}

// ---- drivers ------------------------------------------------------------------------------

#[test]
fn registering_going_online_and_offline() {
    let mut w = World::new();
    w.online("a", pickup());
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.ok(Command::GoOnline { driver_id: id("a") }), []);
    let again = Command::RegisterDriver(NewDriver {
        id: id("a"),
        name: "A".into(),
        car_number: "1".into(),
        phone: "1".into(),
        location: pickup(),
    });
    assert_eq!(w.rejected(again), Rejection::DriverExists(id("a")));

    let moved = at(37.0, 127.0);
    w.ok(Command::MoveDriver {
        driver_id: id("a"),
        location: moved,
    });
    assert_eq!(w.driver("a").location, moved);

    w.ok(Command::GoOffline { driver_id: id("a") });
    assert_eq!(w.driver("a").status, DriverStatus::Offline);
    assert_eq!(w.ok(Command::GoOffline { driver_id: id("a") }), []);
    assert_eq!(
        w.rejected(Command::GoOnline {
            driver_id: id("zz")
        }),
        Rejection::UnknownDriver(id("zz"))
    );
}

#[test]
fn going_offline_with_an_offer_declines_it() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.offer("a");
    let events = w.ok(Command::GoOffline { driver_id: id("a") });
    assert!(matches!(events[0], Event::OfferDeclined { .. }));
    assert_eq!(w.driver("a").status, DriverStatus::Offline);
    assert_eq!(w.driver("a").dispatch_id, None);
    assert_eq!(w.dispatch().offer(), None);
    assert!(w.dispatch().refused.contains(&id("a")));
}

#[test]
fn a_driver_on_a_ride_cannot_go_offline() {
    let mut w = World::dispatched();
    let offline = || Command::GoOffline { driver_id: id("a") };
    assert_eq!(
        w.rejected(offline()),
        Rejection::DriverBusy(id("a"), DriverStatus::Dispatched)
    );
    w.start("a").unwrap();
    assert_eq!(
        w.rejected(offline()),
        Rejection::DriverBusy(id("a"), DriverStatus::InTrip)
    );
}

// ---- searching and offers -----------------------------------------------------------------

#[test]
fn a_booking_opens_one_searching_dispatch() {
    let mut w = World::new();
    w.book();
    assert_eq!(w.dispatch().status(), DispatchStatus::Searching);
    assert_eq!(w.dispatch().deadline_at, T0 + 60_000);
    assert!(w.dispatch().wants_driver(w.now));
    w.book();
    assert_eq!(w.fleet.dispatches.len(), 1, "a repeated booking is ignored");
}

#[test]
fn offers_go_only_to_available_drivers_who_have_not_refused() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    let events = w.offer("a");
    assert_eq!(
        events,
        [Event::Offered {
            dispatch_id: "x1".into(),
            driver_id: id("a"),
            expires_at: T0 + 15_000,
        }]
    );
    assert_eq!(w.driver("a").status, DriverStatus::Offered);
    assert_eq!(
        w.driver("a").dispatch_id.as_ref().map(DispatchId::as_str),
        Some("x1")
    );
    let offer_to = |d: &str| Command::Offer {
        dispatch_id: "x1".into(),
        driver_id: id(d),
    };
    assert_eq!(
        w.rejected(offer_to("a")),
        Rejection::NotSearching("x1".into())
    );

    w.ok(Command::Decline {
        dispatch_id: "x1".into(),
        driver_id: id("a"),
    });
    assert_eq!(
        w.rejected(offer_to("a")),
        Rejection::AlreadyRefused("x1".into(), id("a"))
    );
    w.ok(Command::RegisterDriver(NewDriver {
        id: id("b"),
        name: "B".into(),
        car_number: "2".into(),
        phone: "2".into(),
        location: pickup(),
    }));
    assert_eq!(
        w.rejected(offer_to("b")),
        Rejection::DriverUnavailable(id("b"))
    );
}

#[test]
fn an_offer_never_outlives_the_search() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.now = T0 + 50_000;
    w.offer("a");
    assert_eq!(
        w.dispatch().offer().as_ref().unwrap().expires_at,
        T0 + 60_000
    );
    w.ok(Command::Decline {
        dispatch_id: "x1".into(),
        driver_id: id("a"),
    });
    w.now = T0 + 60_000;
    assert!(
        !w.dispatch().wants_driver(w.now),
        "too late to offer it again"
    );
}

#[test]
fn accepting_dispatches_the_taxi_with_an_eta() {
    let mut w = World::new();
    let start = at(37.5663 - 990.0 / M_PER_DEG, 126.9779);
    w.online("a", start);
    w.online("b", pickup());
    w.book();
    w.offer("a");
    assert_eq!(
        w.accept("b").unwrap_err(),
        Rejection::NotOffered("x1".into(), id("b"))
    );
    let events = w.accept("a").unwrap();
    assert_eq!(
        events,
        [Event::Dispatched {
            dispatch_id: "x1".into(),
            driver_id: id("a"),
            eta_seconds: 143,
        }]
    );
    assert_eq!(w.dispatch().status(), DispatchStatus::Dispatched);
    assert_eq!(w.dispatch().driver_id(), Some(&id("a")));
    assert_eq!(w.dispatch().offer(), None);
    assert_eq!(w.driver("a").status, DriverStatus::Dispatched);
    assert_eq!(
        w.accept("a").unwrap_err(),
        Rejection::NotOffered("x1".into(), id("a"))
    );
}

#[test]
fn an_expired_offer_cannot_be_accepted_and_its_timer_frees_the_driver() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.offer("a");
    w.now = T0 + 15_000;
    assert_eq!(
        w.rejected(Command::Accept {
            dispatch_id: "x1".into(),
            driver_id: id("a"),
        }),
        Rejection::OfferExpired("x1".into(), id("a"))
    );
    let stale = Command::ExpireOffer {
        dispatch_id: "x1".into(),
        driver_id: id("someone-else"),
    };
    assert_eq!(w.ok(stale), [], "a stale timer changes nothing");
    let events = w.ok(Command::ExpireOffer {
        dispatch_id: "x1".into(),
        driver_id: id("a"),
    });
    assert!(matches!(events[..], [Event::OfferExpired { .. }]));
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert!(w.dispatch().refused.contains(&id("a")));
    assert!(w.dispatch().wants_driver(w.now));
}

#[test]
fn declining_frees_the_driver_and_only_the_offered_driver_may() {
    let mut w = World::new();
    w.online("a", pickup());
    w.online("b", pickup());
    w.book();
    w.offer("a");
    let decline = |d: &str| Command::Decline {
        dispatch_id: "x1".into(),
        driver_id: id(d),
    };
    assert_eq!(
        w.rejected(decline("b")),
        Rejection::NotOffered("x1".into(), id("b"))
    );
    let before = w.fleet.clone();
    w.ok(decline("a"));
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.driver("a").dispatch_id, None);
    assert_eq!(
        to_match(&before, &w.fleet, w.now),
        ToMatch {
            dispatches: vec!["x1".into()],
            drivers: vec![id("a")],
        }
    );
}

#[test]
fn the_deadline_fails_a_search_and_frees_the_offered_driver() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.offer("a");
    let events = w.ok(Command::Deadline {
        dispatch_id: "x1".into(),
    });
    assert_eq!(
        events,
        [Event::Failed {
            dispatch_id: "x1".into(),
            driver_id: Some(id("a")),
        }]
    );
    assert_eq!(w.dispatch().status(), DispatchStatus::Failed);
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(
        w.accept("a").unwrap_err(),
        Rejection::DispatchClosed("x1".into(), DispatchStatus::Failed)
    );

    let mut w = World::dispatched();
    let deadline = Command::Deadline {
        dispatch_id: "x1".into(),
    };
    assert_eq!(w.ok(deadline), [], "a dispatched ride has no deadline");
}

// ---- trips --------------------------------------------------------------------------------

#[test]
fn only_the_assigned_driver_starts_a_dispatched_trip() {
    let mut w = World::new();
    w.online("a", pickup());
    w.online("b", pickup());
    w.book();
    assert_eq!(
        w.start("a").unwrap_err(),
        Rejection::NotDispatched("x1".into(), DispatchStatus::Searching)
    );
    w.offer("a");
    w.accept("a").unwrap();
    assert_eq!(
        w.start("b").unwrap_err(),
        Rejection::NotAssigned("x1".into(), id("b"))
    );
    w.start("a").unwrap();
    assert_eq!(w.dispatch().status(), DispatchStatus::InTrip);
    assert_eq!(w.driver("a").status, DriverStatus::InTrip);
    assert_eq!(
        w.start("a").unwrap_err(),
        Rejection::NotDispatched("x1".into(), DispatchStatus::InTrip)
    );
}

#[test]
fn a_trip_is_charged_by_distance_and_ends_once() {
    let mut w = World::dispatched();
    let charge_for =
        |w: &World, d: &str, reported| charge(&w.fleet, &rules(), "x1", &id(d), reported);
    assert_eq!(
        charge_for(&w, "a", None).unwrap_err(),
        Rejection::NotInTrip("x1".into(), DispatchStatus::Dispatched)
    );
    assert_eq!(
        w.end("a").unwrap_err(),
        Rejection::NotInTrip("x1".into(), DispatchStatus::Dispatched)
    );
    w.start("a").unwrap();

    let straight = charge_for(&w, "a", None).unwrap();
    assert_eq!(straight.distance_meters, 2500);
    assert_eq!(straight.amount, 4800 + 100 * 6);
    assert_eq!(straight.card_token, "tok");
    assert_eq!(straight.book_id.as_str(), "b1");
    assert_eq!(charge_for(&w, "a", Some(5000)).unwrap().amount, 7300);
    // 2.5 km in a straight line: 750 m to 5,500 m is plausible, nothing else.
    let dropoff = w.dispatch().booking.as_ref().unwrap().dropoff.at;
    let band = DistanceBand::around(pickup().distance_m(dropoff), None);
    assert_eq!(band.min_m, 750);
    assert!((5500..=5501).contains(&band.max_m), "{band:?}"); // 2,500 m, give or take rounding
    for implausible in [0, 749, band.max_m + 1, 10_000, 1_000_000] {
        assert_eq!(
            charge_for(&w, "a", Some(implausible)).unwrap_err(),
            Rejection::ImplausibleDistance {
                reported: implausible,
                straight_m: 2500,
                path_m: None,
                band,
            }
        );
    }
    assert_eq!(charge_for(&w, "a", Some(750)).unwrap().amount, 4800);
    assert_eq!(
        charge_for(&w, "a", Some(5500)).unwrap().distance_meters,
        5500
    );
    assert_eq!(
        charge_for(&w, "b", None).unwrap_err(),
        Rejection::NotAssigned("x1".into(), id("b"))
    );

    w.end("a").unwrap();
    assert_eq!(w.dispatch().status(), DispatchStatus::Ended);
    assert_eq!(w.dispatch().trip().as_ref().unwrap().fare, 5400);
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.driver("a").dispatch_id, None);
    assert_eq!(
        w.end("a").unwrap_err(),
        Rejection::AlreadyEnded("x1".into())
    );
    assert_eq!(
        charge_for(&w, "a", None).unwrap_err(),
        Rejection::AlreadyEnded("x1".into())
    );
}

#[test]
fn the_trip_remembers_the_path_its_driver_reports() {
    let mut w = World::dispatched();
    let north = |m: f64| at(37.5663 + m / M_PER_DEG, 126.9779);
    let move_to = |w: &mut World, to: LatLng| {
        w.ok(Command::MoveDriver {
            driver_id: id("a"),
            location: to,
        })
    };
    // Before boarding the driver's moves are not the trip's.
    move_to(&mut w, north(-300.0));
    assert_eq!(w.dispatch().trip_path_m(), None);
    w.start("a").unwrap();
    assert_eq!(w.dispatch().trip_path_m(), None, "nothing reported yet");

    // From the pickup (not from where the driver was), then from each report to the next.
    let events = move_to(&mut w, north(1000.0));
    assert!(
        matches!(&events[..], [Event::DriverMoved { .. }, Event::TripPathExtended { dispatch_id, .. }] if dispatch_id == "x1"),
        "{events:?}"
    );
    let path = |w: &World| w.dispatch().trip_path_m().unwrap();
    assert!((path(&w) - 1000.0).abs() < 0.01, "{}", path(&w));
    move_to(&mut w, north(400.0));
    move_to(&mut w, north(2500.0));
    assert!((path(&w) - 3700.0).abs() < 0.01, "{}", path(&w));

    w.end("a").unwrap();
    let ended = path(&w);
    move_to(&mut w, north(9000.0));
    assert_eq!(path(&w), ended, "the trip is over");
}

#[test]
fn a_reported_detour_widens_the_band_and_nothing_else_does() {
    let mut w = World::dispatched();
    w.start("a").unwrap();
    let charge_for = |w: &World, reported| charge(&w.fleet, &rules(), "x1", &id("a"), reported);
    assert!(matches!(
        charge_for(&w, Some(12_000)),
        Err(Rejection::ImplausibleDistance { .. })
    ));
    // 5 km north, back to the pickup, then to the drop-off 2.5 km north: 12.5 km reported.
    for metres in [5000.0, 0.0, 2500.0] {
        w.ok(Command::MoveDriver {
            driver_id: id("a"),
            location: at(37.5663 + metres / M_PER_DEG, 126.9779),
        });
    }
    let twelve = charge_for(&w, Some(12_000)).unwrap();
    assert_eq!(twelve.distance_meters, 12_000);
    assert_eq!(twelve.amount, 4800 + 100 * ((12_000 - 1600) / 131));
    let Err(Rejection::ImplausibleDistance { band, path_m, .. }) = charge_for(&w, Some(16_200))
    else {
        panic!("16.2 km is more than 1.25 × 12.5 km + 500 m");
    };
    assert_eq!((band.min_m, path_m), (750, Some(12_500)));
    assert!((16_125..=16_126).contains(&band.max_m), "{band:?}");
    // Without a reported distance the fare stays on the straight line, whatever the path.
    assert_eq!(charge_for(&w, None).unwrap().distance_meters, 2500);
}

#[test]
fn distance_band_examples() {
    // City Hall to Gangnam Station, 8,778 m apart: a 10 km meter reading is fine, 1,000 km not.
    let band = DistanceBand::around(8778.0, None);
    assert_eq!(
        band,
        DistanceBand {
            min_m: 3889,
            max_m: 18_056
        }
    );
    assert!(band.contains(10_000) && !band.contains(1_000_000) && !band.contains(100));
    // Pickup and drop-off at the same place (a round trip): up to the slack, or the path driven.
    assert_eq!(
        DistanceBand::around(0.0, None),
        DistanceBand {
            min_m: 0,
            max_m: 500
        }
    );
    let round_trip = DistanceBand::around(0.0, Some(6000.0));
    assert_eq!(
        round_trip,
        DistanceBand {
            min_m: 0,
            max_m: 8000
        }
    );
    // A short reported path never narrows the band the straight line gives.
    assert_eq!(DistanceBand::around(8778.0, Some(100.0)), band);
}

mod distance_band {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A real meter's reading is accepted: anything from the straight line to twice it, and
        /// anything up to the reported path (with its margin) once that is above the floor.
        #[test]
        fn a_real_meters_reading_is_accepted(
            straight in 0.0..100_000.0f64,
            path in proptest::option::of(0.0..300_000.0f64),
            road in 1.0..=2.0f64,
            along in 0.0..=1.25f64,
        ) {
            let band = DistanceBand::around(straight, path);
            prop_assert!(band.contains((straight * road).round() as i64), "{band:?}");
            if let Some(path) = path {
                let driven = (path * along).round() as i64;
                prop_assert!(band.contains(driven) || driven < band.min_m, "{band:?}");
            }
        }

        /// What lies beyond the bounds is refused, and they are where the rule says.
        #[test]
        fn the_bounds_are_the_documented_ones(
            straight in 0.0..100_000.0f64,
            path in proptest::option::of(0.0..300_000.0f64),
        ) {
            let band = DistanceBand::around(straight, path);
            let max = (2.0 * straight).max(1.25 * path.unwrap_or(0.0)) + 500.0;
            let min = (straight / 2.0 - 500.0).max(0.0);
            prop_assert_eq!(band.max_m, max.ceil() as i64);
            prop_assert_eq!(band.min_m, min.floor() as i64);
            prop_assert!(!band.contains(band.max_m + 1));
            prop_assert!(band.min_m == 0 || !band.contains(band.min_m - 1));
            prop_assert!(band.min_m <= band.max_m);
        }

        /// More path reported only ever widens the band.
        #[test]
        fn a_longer_path_never_refuses_what_a_shorter_one_accepts(
            straight in 0.0..100_000.0f64,
            path in 0.0..300_000.0f64,
            more in 0.0..100_000.0f64,
        ) {
            let (shorter, longer) = (
                DistanceBand::around(straight, Some(path)),
                DistanceBand::around(straight, Some(path + more)),
            );
            prop_assert_eq!(shorter.min_m, longer.min_m);
            prop_assert!(longer.max_m >= shorter.max_m);
            prop_assert!(shorter.max_m >= DistanceBand::around(straight, None).max_m);
        }
    }
}

// ---- cancelling ---------------------------------------------------------------------------

#[test]
fn cancelling_a_search_withdraws_the_offer() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.offer("a");
    let events = w.cancel();
    assert_eq!(
        events,
        [Event::Cancelled {
            dispatch_id: "x1".into(),
            driver_id: Some(id("a")),
            reason: CancelReason::Customer,
        }]
    );
    assert_eq!(w.dispatch().status(), DispatchStatus::Cancelled);
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.cancel(), [], "cancelling twice changes nothing");
    assert_eq!(
        w.accept("a").unwrap_err(),
        Rejection::DispatchClosed("x1".into(), DispatchStatus::Cancelled)
    );
}

#[test]
fn cancelling_a_dispatched_ride_frees_the_driver_and_wins_over_a_later_start() {
    let mut w = World::dispatched();
    w.cancel();
    assert_eq!(w.dispatch().status(), DispatchStatus::Cancelled);
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(
        w.start("a").unwrap_err(),
        Rejection::DispatchClosed("x1".into(), DispatchStatus::Cancelled)
    );
}

#[test]
fn a_started_trip_rejects_the_cancel() {
    let mut w = World::dispatched();
    w.start("a").unwrap();
    let before = w.fleet.clone();
    assert_eq!(
        w.cancel(),
        [Event::CancelRejected {
            dispatch_id: "x1".into()
        }]
    );
    assert_eq!(w.fleet, before);
}

#[test]
fn a_cancel_before_its_booking_is_remembered() {
    let mut w = World::new();
    let events = w.cancel();
    assert!(
        matches!(&events[..], [Event::CancelledUnseen(d)] if d.status() == DispatchStatus::Cancelled)
    );
    w.book();
    let only = w.fleet.dispatch_for_book("b1").unwrap();
    assert_eq!(only.status(), DispatchStatus::Cancelled);
    assert_eq!(w.fleet.dispatches.len(), 1, "the late booking is ignored");
}

// ---- the booking's answer ------------------------------------------------------------------

#[test]
fn the_search_lasts_until_the_bookings_answer_is_due() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book_answered_by(Some(T0 + 5_000));
    assert_eq!(
        w.dispatch().deadline_at,
        T0 + 5_000,
        "book's deadline, not dispatch's"
    );
    let offered = w.offer("a");
    assert!(
        matches!(offered[..], [Event::Offered { expires_at, .. }] if expires_at == T0 + 5_000),
        "an offer never outlives the answer: {offered:?}"
    );
}

#[test]
fn a_booking_heard_of_after_its_answer_is_due_fails_at_once_and_is_offered_to_nobody() {
    let mut w = World::new();
    w.online("a", pickup());
    w.now = T0 + 61_000;
    let events = w.book_answered_by(Some(T0 + 60_000));
    assert!(matches!(
        events[..],
        [
            Event::DispatchOpened(_),
            Event::Failed {
                driver_id: None,
                ..
            }
        ]
    ));
    assert_eq!(w.dispatch().status(), DispatchStatus::Failed);
    assert!(!w.dispatch().wants_driver(w.now));
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(
        w.rejected(Command::Offer {
            dispatch_id: "x1".into(),
            driver_id: id("a"),
        }),
        Rejection::NotSearching("x1".into())
    );
    assert_eq!(w.book_answered_by(Some(T0 + 60_000)), [], "heard of once");
}

#[test]
fn an_expired_booking_calls_off_the_search_and_withdraws_the_offer() {
    let mut w = World::new();
    w.online("a", pickup());
    w.book();
    w.offer("a");
    assert_eq!(
        w.expire(),
        [Event::Cancelled {
            dispatch_id: "x1".into(),
            driver_id: Some(id("a")),
            reason: CancelReason::Expired,
        }]
    );
    assert_eq!(w.dispatch().status(), DispatchStatus::Cancelled);
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.expire(), [], "told twice, closed once");
}

/// The late-dispatch race: the driver accepted just before the deadline, book had not heard of
/// it when it answered the customer; dispatch calls the taxi back.
#[test]
fn an_expired_booking_calls_back_a_taxi_that_accepted_too_late() {
    let mut w = World::dispatched();
    assert_eq!(
        w.expire(),
        [Event::Cancelled {
            dispatch_id: "x1".into(),
            driver_id: Some(id("a")),
            reason: CancelReason::Expired,
        }]
    );
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    assert_eq!(w.driver("a").dispatch_id, None);
    assert_eq!(
        w.start("a").unwrap_err(),
        Rejection::DispatchClosed("x1".into(), DispatchStatus::Cancelled)
    );
}

#[test]
fn an_expired_booking_never_cancels_a_trip_under_way_or_a_closed_dispatch() {
    let mut w = World::dispatched();
    w.start("a").unwrap();
    let before = w.fleet.clone();
    assert_eq!(w.expire(), [], "a customer on board is never cancelled");
    assert_eq!(w.fleet, before);
    w.end("a").unwrap();
    assert_eq!(w.expire(), []);
    assert_eq!(w.dispatch().status(), DispatchStatus::Ended);

    let mut w = World::new();
    assert_eq!(w.expire(), [], "no dispatch for it: nothing to close");
    w.book();
    w.ok(Command::Deadline {
        dispatch_id: "x1".into(),
    });
    assert_eq!(w.expire(), []);
    assert_eq!(w.dispatch().status(), DispatchStatus::Failed);
}

// ---- a declined card ------------------------------------------------------------------------

#[test]
fn a_replaced_card_is_charged_from_then_on() {
    let mut w = World::dispatched();
    w.start("a").unwrap();
    let charged = |w: &World| charge(&w.fleet, &rules(), "x1", &id("a"), None).unwrap();
    assert_eq!(charged(&w).card_token, "tok");
    assert_eq!(
        w.replace_card("tok-new"),
        [Event::CardReplaced {
            dispatch_id: "x1".into(),
            card_token: "tok-new".into(),
        }]
    );
    assert_eq!(charged(&w).card_token, "tok-new");
    assert_eq!(w.dispatch().status(), DispatchStatus::InTrip);
    assert_eq!(
        w.replace_card("tok-new"),
        [],
        "the same card again changes nothing"
    );
    w.end("a").unwrap();
    assert_eq!(
        w.replace_card("tok-later"),
        [],
        "a paid trip keeps its card"
    );
    assert_eq!(w.replace_card_of_unknown(), []);
}

#[test]
fn a_declined_card_is_told_once_per_card_and_the_trip_goes_on() {
    let mut w = World::dispatched();
    assert_eq!(
        w.declined("a", "tok"),
        [],
        "not in a trip: nothing was charged"
    );
    w.start("a").unwrap();
    let told = w.declined("a", "tok");
    assert!(
        matches!(&told[..], [Event::PaymentDeclined { fare: 5400, driver_id, decline, .. }]
            if *driver_id == id("a") && decline.card_token == "tok" && decline.at == T0),
        "{told:?}"
    );
    assert_eq!(w.dispatch().status(), DispatchStatus::InTrip);
    assert_eq!(w.driver("a").status, DriverStatus::InTrip);
    // The driver retries at once: the customer was just told.
    w.now += 1_000;
    assert_eq!(w.declined("a", "tok"), []);
    assert_eq!(w.declined("b", "tok"), [], "only the trip's driver ends it");
    // A decline of the old card heard after the card was replaced: nothing to tell.
    w.replace_card("tok-2");
    assert_eq!(w.declined("a", "tok"), []);
    assert_eq!(
        w.declined("a", "tok-2").len(),
        1,
        "the new card is told about"
    );
    // A while later the same card declined again is told again.
    w.now += DECLINE_QUIET_MS;
    assert_eq!(w.declined("a", "tok-2").len(), 1);
}

#[test]
fn a_trip_paid_in_cash_ends_like_one_paid_by_card() {
    let mut w = World::dispatched();
    w.start("a").unwrap();
    w.declined("a", "tok");
    let trip = PaidTrip {
        distance_meters: 2500,
        fare: 5400,
        pay_id: "p1".into(),
        method: Settlement::Cash,
    };
    w.ok(Command::End {
        dispatch_id: "x1".into(),
        driver_id: id("a"),
        trip: trip.clone(),
    });
    assert_eq!(w.dispatch().status(), DispatchStatus::Ended);
    assert_eq!(w.dispatch().trip(), Some(&trip));
    assert_eq!(w.driver("a").status, DriverStatus::Available);
    w.ok(Command::GoOffline { driver_id: id("a") });
    assert_eq!(w.driver("a").status, DriverStatus::Offline);
}

#[test]
fn settlements_are_named_card_or_cash() {
    assert_eq!(Settlement::default(), Settlement::Card);
    for s in [Settlement::Card, Settlement::Cash] {
        assert_eq!(Settlement::parse(s.as_str()), Some(s));
    }
    assert_eq!(Settlement::parse("cash"), None);
    assert_eq!(Settlement::parse("CHEQUE"), None);
}

// ---- randomized fleets --------------------------------------------------------------------

mod fleets {
    use proptest::prelude::*;

    use super::*;

    const DRIVERS: usize = 4;
    const BOOKINGS: usize = 4;
    const SPOTS: [(f64, f64); 4] = [
        (37.5663, 126.9779),
        (37.5700, 126.9850),
        (37.4979, 127.0276),
        (37.5512, 126.9882),
    ];

    #[derive(Debug, Clone)]
    enum Op {
        Register(usize, usize),
        Move(usize, usize),
        Online(usize),
        Offline(usize),
        /// Booking, pickup, drop-off, and whether book said when it answers.
        Book(usize, usize, usize, bool),
        /// `None`: the driver holding the offer (or assigned), as a well-behaved client would.
        Accept(usize, Option<usize>),
        Decline(usize, Option<usize>),
        Expire(usize),
        Deadline(usize),
        Start(usize, Option<usize>),
        EndPaid(usize, Option<usize>, Option<i64>),
        EndInCash(usize, Option<usize>),
        /// The card is declined, and the decline recorded (the customer told).
        EndDeclined(usize, Option<usize>),
        Cancel(usize),
        /// Book answered "no taxi" (`BookExpired`).
        BookExpired(usize),
        ReplaceCard(usize),
        Wait(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let d = 0..DRIVERS;
        let b = 0..BOOKINGS;
        let s = 0..SPOTS.len();
        let who = proptest::option::weighted(0.3, 0..DRIVERS);
        prop_oneof![
            (d.clone(), s.clone()).prop_map(|(d, s)| Op::Register(d, s)),
            (d.clone(), s.clone()).prop_map(|(d, s)| Op::Move(d, s)),
            d.clone().prop_map(Op::Online),
            d.clone().prop_map(Op::Offline),
            (b.clone(), s.clone(), s, any::<bool>()).prop_map(|(b, p, q, a)| Op::Book(b, p, q, a)),
            (b.clone(), who.clone()).prop_map(|(b, d)| Op::Accept(b, d)),
            (b.clone(), who.clone()).prop_map(|(b, d)| Op::Decline(b, d)),
            b.clone().prop_map(Op::Expire),
            b.clone().prop_map(Op::Deadline),
            (b.clone(), who.clone()).prop_map(|(b, d)| Op::Start(b, d)),
            (b.clone(), who.clone(), proptest::option::of(0..20_000i64))
                .prop_map(|(b, d, m)| Op::EndPaid(b, d, m)),
            (b.clone(), who.clone()).prop_map(|(b, d)| Op::EndInCash(b, d)),
            (b.clone(), who).prop_map(|(b, d)| Op::EndDeclined(b, d)),
            b.clone().prop_map(Op::Cancel),
            b.clone().prop_map(Op::BookExpired),
            b.prop_map(Op::ReplaceCard),
            (0..20_000u32).prop_map(Op::Wait),
        ]
    }

    fn driver_id(i: usize) -> ClientId {
        id(&format!("driver-{i}"))
    }

    fn spot(i: usize) -> LatLng {
        let (lat, lng) = SPOTS[i];
        at(lat, lng)
    }

    /// The whole fleet, matched the way the store matches: by brute force instead of an index.
    struct Sim {
        fleet: Fleet,
        now: Timestamp,
        next: u32,
        ended: BTreeMap<DispatchId, u32>,
        cancelled: BTreeSet<DispatchId>,
        started: BTreeSet<DispatchId>,
        cancel_rejected: BTreeSet<DispatchId>,
    }

    impl Sim {
        fn dispatch_of(&self, b: usize) -> Option<&Dispatch> {
            self.fleet.dispatch_for_book(&format!("book-{b}"))
        }

        fn dispatch_id(&self, b: usize) -> DispatchId {
            self.dispatch_of(b)
                .map_or_else(|| format!("none-{b}").into(), |d| d.id.clone())
        }

        /// The driver a well-behaved client names: the one holding the offer, else the assigned.
        fn who(&self, b: usize, chosen: Option<usize>) -> ClientId {
            chosen.map(driver_id).unwrap_or_else(|| {
                self.dispatch_of(b)
                    .and_then(|d| {
                        d.offer()
                            .as_ref()
                            .map(|o| o.driver_id.clone())
                            .or_else(|| d.driver_id().cloned())
                    })
                    .unwrap_or_else(|| driver_id(0))
            })
        }

        fn run(&mut self, command: Command) -> Result<Vec<Event>, Rejection> {
            let before = self.fleet.clone();
            let mut events = decide(&self.fleet, &rules(), command, self.now)?;
            for e in &events {
                apply(&mut self.fleet, e);
            }
            let mut work = to_match(&before, &self.fleet, self.now);
            loop {
                let offer = if let Some(dispatch_id) = work.dispatches.pop() {
                    self.nearest_driver(dispatch_id.as_str())
                        .map(|driver_id| (dispatch_id, driver_id))
                } else if let Some(driver_id) = work.drivers.pop() {
                    self.oldest_waiting(&driver_id)
                        .map(|dispatch_id| (dispatch_id, driver_id))
                } else {
                    break;
                };
                let Some((dispatch_id, driver_id)) = offer else {
                    continue;
                };
                let before = self.fleet.clone();
                let offered = decide(
                    &self.fleet,
                    &rules(),
                    Command::Offer {
                        dispatch_id,
                        driver_id,
                    },
                    self.now,
                );
                let offered = offered.expect("matching only offers what may be offered");
                for e in &offered {
                    apply(&mut self.fleet, e);
                }
                let more = to_match(&before, &self.fleet, self.now);
                work.dispatches.extend(more.dispatches);
                work.drivers.extend(more.drivers);
                events.extend(offered);
            }
            Ok(events)
        }

        fn nearest_driver(&self, dispatch_id: &str) -> Option<ClientId> {
            let d = &self.fleet.dispatches[dispatch_id];
            if !d.wants_driver(self.now) {
                return None;
            }
            let pickup = d.booking.as_ref()?.pickup.at;
            self.fleet
                .drivers
                .values()
                .filter(|v| v.status == DriverStatus::Available && !d.refused.contains(&v.id))
                .min_by(|x, y| {
                    x.location
                        .distance_m(pickup)
                        .total_cmp(&y.location.distance_m(pickup))
                })
                .map(|v| v.id.clone())
        }

        fn oldest_waiting(&self, driver_id: &ClientId) -> Option<DispatchId> {
            if self.fleet.drivers[driver_id].status != DriverStatus::Available {
                return None;
            }
            self.fleet
                .dispatches
                .values()
                .filter(|d| d.wants_driver(self.now) && !d.refused.contains(driver_id))
                .min_by_key(|d| (d.created_at, d.id.clone()))
                .map(|d| d.id.clone())
        }

        fn step(&mut self, op: Op) {
            let before = self.fleet.clone();
            let outcome = match op {
                Op::Register(d, s) => self.run(Command::RegisterDriver(NewDriver {
                    id: driver_id(d),
                    name: format!("Driver {d}"),
                    car_number: format!("car-{d}"),
                    phone: "010-0000-0000".into(),
                    location: spot(s),
                })),
                Op::Move(d, s) => self.run(Command::MoveDriver {
                    driver_id: driver_id(d),
                    location: spot(s),
                }),
                Op::Online(d) => self.run(Command::GoOnline {
                    driver_id: driver_id(d),
                }),
                Op::Offline(d) => self.run(Command::GoOffline {
                    driver_id: driver_id(d),
                }),
                Op::Book(b, p, q, answered) => {
                    self.next += 1;
                    self.run(Command::Open(NewDispatch {
                        id: format!("dispatch-{}", self.next).into(),
                        book_id: format!("book-{b}").into(),
                        customer_id: format!("customer-{b}"),
                        booking: Booking {
                            card_token: "tok".into(),
                            pickup: place("from", spot(p)),
                            dropoff: place("to", spot(q)),
                        },
                        // Sometimes heard of late: due a little before now.
                        answer_by: answered
                            .then(|| self.now + i64::from(self.next % 3) * 30_000 - 1),
                    }))
                }
                Op::Accept(b, d) => self.run(Command::Accept {
                    dispatch_id: self.dispatch_id(b),
                    driver_id: self.who(b, d),
                }),
                Op::Decline(b, d) => self.run(Command::Decline {
                    dispatch_id: self.dispatch_id(b),
                    driver_id: self.who(b, d),
                }),
                Op::Expire(b) => {
                    // The offer timer fires at the offer's expiry (a stale one names someone else).
                    if let Some(o) = self.dispatch_of(b).and_then(|d| d.offer().cloned()) {
                        self.now = self.now.max(o.expires_at);
                    }
                    self.run(Command::ExpireOffer {
                        dispatch_id: self.dispatch_id(b),
                        driver_id: self.who(b, None),
                    })
                }
                Op::Deadline(b) => {
                    if let Some(d) = self.dispatch_of(b) {
                        self.now = self.now.max(d.deadline_at);
                    }
                    self.run(Command::Deadline {
                        dispatch_id: self.dispatch_id(b),
                    })
                }
                Op::Start(b, d) => self.run(Command::Start {
                    dispatch_id: self.dispatch_id(b),
                    driver_id: self.who(b, d),
                }),
                Op::EndPaid(b, d, metres) => {
                    let (dispatch_id, driver_id) = (self.dispatch_id(b), self.who(b, d));
                    match charge(
                        &self.fleet,
                        &rules(),
                        dispatch_id.as_str(),
                        &driver_id,
                        metres,
                    ) {
                        Ok(c) => self.run(Command::End {
                            dispatch_id,
                            driver_id,
                            trip: PaidTrip {
                                distance_meters: c.distance_meters,
                                fare: c.amount,
                                pay_id: format!("pay-{}", self.next),
                                method: Settlement::Card,
                            },
                        }),
                        Err(r) => Err(r),
                    }
                }
                Op::EndInCash(b, d) => {
                    let (dispatch_id, driver_id) = (self.dispatch_id(b), self.who(b, d));
                    match charge(
                        &self.fleet,
                        &rules(),
                        dispatch_id.as_str(),
                        &driver_id,
                        None,
                    ) {
                        Ok(c) => self.run(Command::End {
                            dispatch_id,
                            driver_id,
                            trip: PaidTrip {
                                distance_meters: c.distance_meters,
                                fare: c.amount,
                                pay_id: format!("cash-{}", self.next),
                                method: Settlement::Cash,
                            },
                        }),
                        Err(r) => Err(r),
                    }
                }
                // The card is declined: priced, never ended; the customer is told.
                Op::EndDeclined(b, d) => {
                    let (dispatch_id, driver_id) = (self.dispatch_id(b), self.who(b, d));
                    match charge(
                        &self.fleet,
                        &rules(),
                        dispatch_id.as_str(),
                        &driver_id,
                        None,
                    ) {
                        Ok(c) => {
                            let status = self.dispatch_of(b).map(Dispatch::status);
                            let events = self.run(Command::RecordDecline {
                                dispatch_id,
                                driver_id,
                                card_token: c.card_token,
                                fare: c.amount,
                                reason: "declined".into(),
                            });
                            assert_eq!(self.dispatch_of(b).map(Dispatch::status), status);
                            events
                        }
                        Err(r) => Err(r),
                    }
                }
                Op::BookExpired(b) => {
                    let events = self.run(Command::Expire {
                        book_id: format!("book-{b}").into(),
                    });
                    let after = self.dispatch_of(b).map(Dispatch::status);
                    assert!(
                        !matches!(
                            after,
                            Some(DispatchStatus::Searching | DispatchStatus::Dispatched)
                        ),
                        "nothing stays open for an expired booking: {after:?}"
                    );
                    events
                }
                Op::ReplaceCard(b) => {
                    self.next += 1;
                    let card_token = format!("tok-{}", self.next);
                    let events = self.run(Command::ReplaceCard {
                        book_id: format!("book-{b}").into(),
                        card_token: card_token.clone(),
                    });
                    if let Some(d) = self.dispatch_of(b).filter(|d| d.trip().is_none()) {
                        let open = !matches!(
                            d.status(),
                            DispatchStatus::Cancelled | DispatchStatus::Failed
                        );
                        let card = d.booking.as_ref().map(|b| b.card_token.as_str());
                        if open && card.is_some() {
                            assert_eq!(card, Some(card_token.as_str()), "charged from now on");
                        }
                    }
                    events
                }
                Op::Cancel(b) => {
                    self.next += 1;
                    let status = self.dispatch_of(b).map(Dispatch::status);
                    let events = self.run(Command::Cancel {
                        book_id: format!("book-{b}").into(),
                        customer_id: format!("customer-{b}"),
                        unseen_id: format!("unseen-{}", self.next),
                    });
                    let events = events.expect("a cancel is never refused, only answered");
                    let after = self.dispatch_of(b).map(Dispatch::status);
                    match status {
                        None | Some(DispatchStatus::Searching | DispatchStatus::Dispatched) => {
                            assert_eq!(after, Some(DispatchStatus::Cancelled));
                            assert!(matches!(
                                events[0],
                                Event::Cancelled { .. } | Event::CancelledUnseen(_)
                            ));
                        }
                        Some(DispatchStatus::InTrip | DispatchStatus::Ended) => {
                            assert_eq!(after, status, "a started trip is not cancelled");
                            assert!(matches!(events[..], [Event::CancelRejected { .. }]));
                        }
                        Some(DispatchStatus::Cancelled | DispatchStatus::Failed) => {
                            assert!(events.is_empty());
                        }
                    }
                    Ok(events)
                }
                Op::Wait(ms) => {
                    self.now += i64::from(ms);
                    Ok(vec![])
                }
            };
            match outcome {
                Ok(events) => self.record(&events),
                Err(_) => assert_eq!(self.fleet, before, "a rejected command changes nothing"),
            }
            for (id, old) in &before.dispatches {
                let (was, is) = (old.trip_path_m(), self.fleet.dispatches[id].trip_path_m());
                if old.status() == DispatchStatus::InTrip {
                    assert!(
                        is >= was,
                        "{id}: a trip's path only grows: {was:?} → {is:?}"
                    );
                } else {
                    assert_eq!(
                        is, was,
                        "{id}: only a trip in progress has a path that grows"
                    );
                }
            }
            for (id, old) in &before.dispatches {
                let terminal = matches!(
                    old.status(),
                    DispatchStatus::Ended | DispatchStatus::Cancelled | DispatchStatus::Failed
                );
                if terminal {
                    assert_eq!(&self.fleet.dispatches[id], old, "{id} is final");
                }
            }
            self.check();
        }

        fn record(&mut self, events: &[Event]) {
            for e in events {
                match e {
                    Event::TripEnded { dispatch_id, .. } => {
                        *self.ended.entry(dispatch_id.clone()).or_default() += 1;
                    }
                    Event::Cancelled { dispatch_id, .. } => {
                        self.cancelled.insert(dispatch_id.clone());
                    }
                    Event::TripStarted { dispatch_id, .. } => {
                        self.started.insert(dispatch_id.clone());
                    }
                    Event::CancelRejected { dispatch_id } => {
                        self.cancel_rejected.insert(dispatch_id.clone());
                    }
                    Event::PaymentDeclined { dispatch_id, .. } => {
                        let d = &self.fleet.dispatches[dispatch_id];
                        assert_eq!(d.status(), DispatchStatus::InTrip, "told only of a trip");
                    }
                    _ => {}
                }
            }
        }

        fn check(&self) {
            let fleet = &self.fleet;
            for (id, d) in &fleet.dispatches {
                let ended = self.ended.get(id).copied().unwrap_or(0);
                assert!(ended <= 1, "{id} charged {ended} times");
                assert_eq!(ended == 1, d.status() == DispatchStatus::Ended, "{id}");
                assert_eq!(
                    d.trip().is_some(),
                    d.status() == DispatchStatus::Ended,
                    "{id}"
                );
                if d.trip_path_m().is_some() {
                    assert!(
                        matches!(d.status(), DispatchStatus::InTrip | DispatchStatus::Ended),
                        "{id} has a path but no trip"
                    );
                }
                // Cancel and start: exactly one wins.
                assert!(
                    !(self.cancelled.contains(id) && self.started.contains(id)),
                    "{id}"
                );
                if self.cancel_rejected.contains(id) {
                    assert!(matches!(
                        d.status(),
                        DispatchStatus::InTrip | DispatchStatus::Ended
                    ));
                }
                if self.cancelled.contains(id) {
                    assert_eq!(d.status(), DispatchStatus::Cancelled);
                }
                // A dispatch's driver points back at it.
                if let Some(o) = &d.offer() {
                    assert_eq!(d.status(), DispatchStatus::Searching, "{id}");
                    let driver = &fleet.drivers[&o.driver_id];
                    assert_eq!(driver.status, DriverStatus::Offered, "{id}");
                    assert_eq!(driver.dispatch_id.as_ref(), Some(id));
                }
                if let DispatchStatus::Dispatched | DispatchStatus::InTrip = d.status() {
                    let driver = &fleet.drivers[d.driver_id().as_ref().expect("assigned")];
                    assert_eq!(driver.status.as_str(), d.status().as_str(), "{id}");
                    assert_eq!(driver.dispatch_id.as_ref(), Some(id));
                }
                // Nobody waits while a driver who would take it is free.
                if d.wants_driver(self.now) {
                    assert!(
                        !fleet.drivers.values().any(|v| {
                            v.status == DriverStatus::Available && !d.refused.contains(&v.id)
                        }),
                        "{id} waits while a driver is free"
                    );
                }
            }
            for (id, driver) in &fleet.drivers {
                // A busy driver points at a live dispatch that points back; a free one at none.
                let on = fleet.dispatches.values().filter(|d| {
                    d.offered_to(id)
                        || (matches!(
                            d.status(),
                            DispatchStatus::Dispatched | DispatchStatus::InTrip
                        ) && d.driver_id() == Some(id))
                });
                let on: Vec<_> = on.map(|d| d.id.clone()).collect();
                assert!(on.len() <= 1, "{id} is on {on:?}");
                match driver.status {
                    DriverStatus::Offline | DriverStatus::Available => {
                        assert_eq!(driver.dispatch_id, None, "{id}");
                        assert!(on.is_empty(), "{id} is free but on {on:?}");
                    }
                    DriverStatus::Offered | DriverStatus::Dispatched | DriverStatus::InTrip => {
                        assert_eq!(driver.dispatch_id.as_ref(), on.first(), "{id}");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn invariants_hold_over_any_command_sequence(ops in proptest::collection::vec(op(), 1..80)) {
            let mut sim = Sim {
                fleet: Fleet::default(),
                now: T0,
                next: 0,
                ended: BTreeMap::new(),
                cancelled: BTreeSet::new(),
                started: BTreeSet::new(),
                cancel_rejected: BTreeSet::new(),
            };
            for op in ops {
                sim.step(op);
            }
        }
    }
}
