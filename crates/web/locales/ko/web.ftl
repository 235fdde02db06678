# 탄다(Tanda) 화면의 한국어. 여기의 모든 키는 ../en/web.ftl 에도 있습니다 (테스트가 확인합니다).

## 모든 화면의 틀

brand = Tanda
nav-ride = 택시
nav-drive = 운전
nav-fly = 항공
nav-operate = 운영
sign-in = 로그인
sign-up = 회원가입
sign-out = 로그아웃
lang-switch = 언어
lang-ko = 한국어
lang-en = English
footer-api = 이 사이트의 모든 화면은 다른 클라이언트와 똑같은 공개 API를 사용합니다
footer-readiness = 준비 상태
footer-metrics = 지표
footer-cards = 카드 결제는 모의 카드망으로 처리됩니다.
render-failed = 화면의 이 부분을 표시할 수 없습니다.

title-home = 환영합니다
title-ride = 택시
title-drive = 운전
title-fly = 항공
title-operate = 운영
title-signin = 로그인
title-signup = 회원가입

who-as = { $who } 님
who-for = { $who } 님 대신
switch-who = 바꾸기

## 첫 화면

home-heading = 택시와 항공권, 이벤트 하나하나로
home-intro = 서울 어디서나 택시를 부르고 다가오는 모습을 지켜보세요. 직접 택시를 운전하거나, 항공편 좌석을 예약하거나, 시스템 속을 들여다볼 수도 있습니다. 두 화면을 나란히 열어 보세요. 한쪽에서 한 일이 다른 쪽에 바로 나타납니다.
home-guest-note = 고객은 택시와 비행기를 타고, 기사는 운전합니다. 운영자는 { $operator } 계정으로 로그인합니다.
home-ride = 택시를 부르고, 실시간으로 따라가고, 카드나 현금으로 결제하고, 이용 내역을 확인하세요.
home-drive = 영업을 시작하고, 호출이 끝나기 전에 수락하고, 운행을 시작하고 마치며, 오늘 수입을 확인하세요.
home-fly = 지갑을 충전하고, 좌석을 예약하고, 항공권을 받고, 취소하면 환불받으세요.
home-operate = 준비 상태, 컨슈머 지연, 결제 서킷 브레이커, 데드 레터와 재처리.

## 회원가입과 로그인

signin-signed-in-as = 지금 { $who } 님으로 로그인되어 있습니다. 다시 로그인하면 그 세션을 대신합니다.
username = 아이디
password = 비밀번호
signin-new-here = 처음이신가요?
signup-have-account = 이미 계정이 있으신가요?
signup-role = 무엇을 하시나요?
signup-role-customer = 택시와 항공편 이용
signup-role-driver = 택시 운전
signup-username-help = 영문, 숫자, - 와 _ 만 쓸 수 있습니다. 고객·여행자·기사 아이디로도 쓰입니다.
signup-language = 언어 (화면과 알림)
signin-mismatch = 아이디와 비밀번호가 맞지 않습니다.
signin-too-many-in = 로그인 실패가 너무 많습니다. { $wait } 후에 다시 시도하세요.
signin-too-many = 로그인 실패가 너무 많습니다. 잠시 후 다시 시도하세요.
signup-taken = 이미 사용 중인 아이디입니다. 다른 아이디를 고르거나 로그인하세요.
signup-weak = 비밀번호를 8자 이상으로 정해 주세요.

wait-seconds = { $n }초
wait-minutes = 약 { $n }분
minutes-under = 1분 이내
minutes-about = 약 { $n }분

## 누구의 화면인지

choose-note = 운영자는 콜센터처럼 누구를 대신해서든 이 화면을 열 수 있습니다.
choose-open = 열기
choose-customer = 고객 아이디
choose-traveller = 여행자 아이디
not-an-id = "{ $id }"은(는) 아이디가 아닙니다. 영문, 숫자, - 와 _ 로 64자까지 쓸 수 있습니다.
not-yours-heading = 다른 사람의 화면입니다
not-yours = 지금 { $who } 님으로 로그인되어 있습니다. 이 화면은 다른 사람의 것입니다.
not-yours-link = 내 화면 열기
wrong-role-heading = 이 계정으로는 열 수 없습니다
wrong-role = 이 화면은 { $role ->
    [driver] 기사
    [operator] 운영자
   *[customer] 고객
} 전용입니다. 지금 { $who } 님으로 로그인되어 있습니다. 로그아웃한 뒤 { $role ->
    [driver] 기사
    [operator] 운영자
   *[customer] 고객
} 계정으로 로그인하거나, 내 화면으로 가세요.
wrong-role-link = 내 화면

## 공통

name = 이름
phone = 전화번호
pickup = 출발지
dropoff = 도착지
card-number = 카드 번호
notifications = 알림
notifications-empty = 아직 알림이 없습니다.
paid-card = 카드 •••• { $last4 }
paid-card-unknown = 카드
paid-cash = 현금

## 고객 화면

ride-request = 택시 부르기
ride-request-button = 택시 부르기
ride-test-cards = 모의 카드망: 4242 4242 4242 4242 는 결제되고, 4000 0000 0000 0002 는 거절됩니다.
ride-coords-below = 아래 좌표로
ride-coords = 좌표
ride-pickup-lat = 출발지 위도
ride-pickup-lng = 출발지 경도
ride-dropoff-lat = 도착지 위도
ride-dropoff-lng = 도착지 경도
ride-yours = 내 택시
ride-none = 아직 부른 택시가 없습니다. 출발지와 도착지를 골라 주세요.
ride-taxi = 택시
ride-arrives = { $eta } 후 도착
ride-fare = 요금
ride-card-on-file = 결제 카드: •••• { $last4 }
ride-cancel = 호출 취소
ride-replace-card = 카드 변경
ride-replace-card-help = 요금은 운행이 끝날 때 이 카드로 결제됩니다. 카드가 거절되었다면 다른 카드를 입력하세요.
ride-new-card = 새 카드 번호
ride-card-replaced = 카드를 바꿨습니다. 요금은 •••• { $last4 } 카드로 결제됩니다.
ride-choose-place = { $which ->
    [pickup] 출발지
   *[dropoff] 도착지
}를 고르거나 위도와 경도를 입력하세요.
ride-not-a-number = { $which ->
    [pickup] 출발지
   *[dropoff] 도착지
} { $axis ->
    [lat] 위도
   *[lng] 경도
} "{ $raw }"은(는) 숫자가 아닙니다.
ride-enter-card = 새 카드 번호를 입력하세요.

step-REQUESTED = 배차 요청
step-DISPATCHED = 배차 완료
step-IN_TRIP = 운행 중
step-COMPLETED = 운행 완료

note-REQUESTED = 가장 가까운 빈 택시를 찾고 있습니다…
note-DISPATCHED = 택시가 출발지로 가고 있습니다.
note-IN_TRIP = 편안한 이동 되세요.
note-COMPLETED = 탄다를 이용해 주셔서 감사합니다.
note-CANCEL_REQUESTED = 취소하는 중…
note-CANCELLED_BY_CUSTOMER = 호출을 취소했습니다.
note-CANCELLED_BY_SYSTEM = 제시간에 배차할 수 있는 택시가 없었습니다. 다시 시도해 주세요.

history = 이용 내역
history-empty = 이용하신 택시가 여기에 표시됩니다.

## 기사 화면

drivers-open = 기사 화면 열기
drivers-none = 아직 기사가 없습니다. 새로 등록하세요.
drivers-register = 기사 등록
drivers-register-own = 내 택시 등록
drivers-register-note = 첫 영업 전에 한 번만: 운전하는 차량과 출발 위치를 알려 주세요.
driver-id = 기사 아이디
driver-name-example = 김민준
car-number = 차량 번호
starting-at = 출발 위치
register = 등록
driver-enter-id = 기사 아이디를 입력하세요.

driver-status = 상태
driver-near = { $place } 근처
driver-go-online = 영업 시작
driver-go-offline = 영업 종료
driver-move-to = 이동할 곳
driver-move = 이동
driver-choose-place = 이동할 곳을 고르세요.
driver-waiting = 근처 호출을 기다리는 중…
offer-new = 새 호출
offer-length = 약 { $length }
offer-accept = 수락
offer-decline = 거절
trip-current = 현재 운행
trip-to-pickup = 출발지로 가서 손님을 태운 뒤 운행을 시작하세요.
trip-to-pickup-eta = 출발지까지 { $eta }, 손님을 태운 뒤 운행을 시작하세요.
trip-start = 운행 시작
trip-distance = 주행 거리 (m)
trip-end = 운행 종료
trip-declined = 카드 결제가 거절되었습니다. 손님이 카드를 바꾸면 다시 종료하거나, 요금을 현금으로 받으세요.
trip-end-again = 다시 종료
trip-paid-cash = 현금으로 받음
trip-not-a-distance = 거리 "{ $raw }"은(는) 미터 단위의 정수가 아닙니다.
trip-no-action = 배차에는 "{ $action }" 동작이 없습니다.

today = 오늘
trips-count = 운행 { $count }건

## 여행자 화면

wallet = 지갑
deposit-amount = 금액 (원)
deposit = 충전
deposit-not-a-number = 금액 "{ $raw }"은(는) 원 단위의 정수가 아닙니다.
flights = 항공편
flights-none = 판매 중인 항공편이 없습니다. ({ $demo } 옵션으로 Tanda를 시작하면 몇 편이 생깁니다.)
flight = 편명
flight-route = 구간
flight-departs = 출발
flight-seats-left = 남은 좌석
flight-price = 가격
flight-sold-out = 매진
flight-reserve = 예약
reserve-choose = 예약할 항공편을 고르세요.
reservations = 내 예약
reservations-empty = 위에서 좌석을 예약하면 결제와 발권 상태가 여기에 표시됩니다.
reservation-cancel = 취소
reservation-cancel-confirm = 이 예약을 취소할까요? 요금은 지갑으로 환불됩니다.
reservation-departs = { $at } 출발
reservation-ticket = 항공권 { $id }
tickets = 항공권
tickets-empty = 아직 항공권이 없습니다.

## 운영자 화면

ops-rides = 택시 운행
ops-rides-none = 아직 운행이 없습니다.
ops-reservations = 항공 예약
ops-reservations-none = 아직 예약이 없습니다.
ops-services = 서비스
ops-service = 서비스
ops-ready = 준비
ops-outbox = 발행 대기 이벤트
ops-breakers = 서킷 브레이커
ops-is-ready = 준비됨
ops-not-ready = 준비 안 됨
ops-consumers = 컨슈머
ops-consumer = 컨슈머
ops-lag = 지연 (이벤트)
ops-state = 상태
ops-paused = 일시 정지됨
ops-running = 실행 중
ops-pause = 일시 정지
ops-resume = 재개
ops-no-switch = 컨슈머는 일시 정지하거나 재개할 수 있을 뿐, "{ $switch }" 할 수는 없습니다.
ops-dead-letters = 데드 레터
ops-dead-letters-none = 보류된 이벤트가 없습니다.
ops-redriven = 재처리됨
ops-redrive = 재처리
ops-attempts = { $n }회 시도
ops-parked = { $at } 보류
breaker-CLOSED = 닫힘
breaker-OPEN = 열림
breaker-HALF_OPEN = 반열림

## 실시간 지도

map = 지도
map-ride = 이 운행의 지도
map-trip = 이 운행의 지도
map-you = 내 위치
map-fleet = 차량 현황
map-fleet-label = 영업 중인 기사와 운행 지도
map-available = 빈차
map-offered = 호출 중
map-dispatched = 배차 완료
map-in-trip = 운행 중
map-credit = 구 경계: 서울 열린데이터 광장 (southkorea/seoul-maps)

## API 문서

docs-title = Tanda API
docs-noscript = API의 OpenAPI 문서는 { $link } 에 있습니다.

## 배지에 보이는 상태

status-REQUESTED = 배차 요청됨
status-SEARCHING = 배차 중
status-PENDING = 결제 대기
status-CANCEL_REQUESTED = 취소 중
status-OFFERED = 호출 수락 대기
status-DISPATCHED = 배차 완료
status-IN_TRIP = 운행 중
status-PAID = 결제 완료
status-AVAILABLE = 빈차
status-COMPLETED = 운행 완료
status-CONFIRMED = 예약 확정
status-ENDED = 운행 종료
status-ISSUED = 발권 완료
status-CANCELLED_BY_CUSTOMER = 취소됨
status-CANCELLED = 취소됨
status-VOID = 무효
status-OFFLINE = 영업 종료
status-CANCELLED_BY_SYSTEM = 배차 실패
status-PAYMENT_FAILED = 결제 실패
status-FAILED = 실패
status-unknown = 알 수 없음

## 명소

place-seoul-station = 서울역
place-gangnam-station = 강남역
place-hongdae = 홍익대학교
place-myeongdong = 명동
place-itaewon = 이태원
place-jamsil = 롯데월드타워
place-yeouido = 여의도 IFC
place-coex = 코엑스
place-gimpo-airport = 김포공항
place-gyeongbokgung = 경복궁
place-ddp = 동대문디자인플라자
place-snu = 서울대학교

## API가 거절한 이유, 코드별 ({ $detail } 은 API가 보낸 문장)

problem-invalid_card = 카드 번호가 올바르지 않습니다. 숫자를 확인해 주세요.
problem-card_declined = 카드 결제가 거절되었습니다.
problem-no_taxi_available = 지금은 출발지 근처에 빈 택시가 없습니다. 잠시 후 다시 시도해 주세요.
problem-payment_unavailable = 지금은 결제할 수 없습니다. 운행은 계속 진행 중이니 잠시 후 다시 종료해 주세요.
problem-implausible_distance = 입력한 거리가 이 운행의 경로와 맞지 않습니다.
problem-already_completed = 이미 완료된 운행입니다.
problem-already_cancelled = 이미 취소되었습니다.
problem-cancel_pending = 이미 취소를 처리하고 있습니다.
problem-trip_started = 운행이 이미 시작되어 취소할 수 없습니다.
problem-offer_expired = 호출 수락 시간이 지났습니다.
problem-not_offered = 이 호출은 더 이상 수락할 수 없습니다.
problem-sold_out = 이 항공편은 남은 좌석이 없습니다.
problem-flight_departed = 이미 출발한 항공편입니다.
problem-payment_overloaded = 결제를 기다리는 예약이 너무 많습니다. 잠시 후 다시 시도해 주세요.
problem-invalid_amount = 금액을 받을 수 없습니다. 1원 이상의 정수로 입력해 주세요.
problem-invalid_phone = 전화번호가 올바르지 않습니다. 010-1234-5678 처럼 입력해 주세요.
problem-invalid_customer_name = 이름을 확인해 주세요.
problem-missing_field = 필수 항목이 빠졌습니다: { $detail }
problem-rate_limited = 요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.
problem-bad_gateway = 시스템의 응답을 읽을 수 없습니다. 다시 시도해 주세요.
