# Notify's messages in Korean, the default language. Every message here is in en/notify.ftl too,
# with the same arguments (a unit test checks). Money and times arrive already written for the
# language ($fare: "11,200원"; $deadline: "11월 21일 18:30", Seoul time). An amount always ends
# in 원, which has a final consonant, so the particle after it is 이, 을 or 은.

## Taxi: to the customer

book-requested = 택시를 찾고 있어요: { $pickup } → { $dropoff }
taxi-dispatched = 택시가 배차됐어요: { $car } ({ $driver } 기사님, { $phone }). 약 { $minutes }분 후 도착해요.
trip-started = 운행이 시작됐어요. 목적지까지 안전하게 모실게요.
trip-ended-card = 목적지에 도착했어요. 요금 { $fare }이 결제됐어요. (결제번호 { $payId })
trip-ended-cash = 목적지에 도착했어요. 요금 { $fare }은 현금으로 결제됐어요.
dispatch-failed = 죄송해요, 주변에서 택시를 찾지 못했어요. 잠시 후 다시 시도해 주세요.
book-cancelled = 예약이 취소됐어요.
cancel-rejected = 이미 운행이 시작되어 취소할 수 없어요.
payment-declined = 요금 { $fare } 카드 결제가 거절됐어요. 앱에서 카드를 바꾸거나 기사님께 현금으로 결제해 주세요.

## Taxi: to the driver

ride-offered = 새 호출이 왔어요: { $pickup } → { $dropoff }. { $deadline }까지 수락해 주세요.
ride-accepted = 배차가 확정됐어요. 승차 위치로 이동해 주세요.
trip-ended-driver = 운행이 끝났어요. 요금은 { $fare }이에요.
trip-ended-driver-cash = 운행이 끝났어요. 요금 { $fare }은 현금 결제예요.
offer-withdrawn = 호출이 철회됐어요. 예약이 마감됐어요.
offer-expired = 수락 시간이 지나 호출이 다른 기사님께 넘어갔어요.
ride-cancelled = 고객님이 호출을 취소했어요.
ride-cancelled-expired = 운행을 시작하기 전에 예약이 마감됐어요. 다음 호출을 받을 수 있어요.
payment-declined-driver = 고객님의 카드 결제가 거절됐어요. 고객님이 카드를 바꾸면 운행을 다시 종료하거나, 현금으로 정산해 주세요.
card-replaced = 고객님이 카드를 바꿨어요(…{ $last4 }). 이제 운행을 종료할 수 있어요.

## Flight: to the traveller

reservation-requested = { $flight } 항공편({ $from } → { $to }, { $departs } 출발) 예약을 접수했어요. { $price }을 결제할게요.
reservation-pending = 결제가 늦어지고 있어요. 예약은 대기 중이며 결제가 끝나면 자동으로 완료돼요.
reservation-confirmed = 예약이 확정됐어요.
reservation-cancelled = 예약이 취소됐어요.
payment-succeeded = { $amount }을 결제했어요. 남은 잔액은 { $balance }이에요.
payment-failed = 결제에 실패했어요. 잔액 { $balance }이 요금 { $price }보다 적어요.
payment-refunded = { $amount }을 환불했어요. 남은 잔액은 { $balance }이에요.
ticket-issued = { $flight } 항공편 탑승권이 발급됐어요. (탑승권 번호 { $ticket })
ticket-voided = 탑승권이 취소됐어요. (탑승권 번호 { $ticket })
