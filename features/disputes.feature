Feature: Disputes
  A citizen may dispute an infraction, a payment, a verification or a revocation. The
  disputed record keeps counting while the dispute is open. If the dispute is still
  open 30 calendar days after its date, the record stops counting from that day until
  the dispute is resolved. A dispute upheld ends the suspension; a dispute resolved as
  removed means the record never counted, on any date.

  Wang Fang's judgment default costs 100 points under national-v1 and her traffic
  fine 5, so with both counting she stands at 1000 - 100 - 5 = 895, band B.

  Background:
    Given the authorities are registered
    And it is 2026-03-01T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record           | reference | on         | amount  |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |         |
      | Wang Fang | the people's court | judgment default | J-1       | 2025-01-10 | 8000.00 |
      | Wang Fang | the traffic police | traffic fine     | TP-1      | 2025-01-12 | 200.00  |

  Scenario: A judgment still in dispute 30 days after the dispute's date stops counting from that day
    Given these records are in the ledger:
      | citizen   | authority          | record  | reference | on         | acts on                  | details     |
      | Wang Fang | the dispute office | dispute | D-1       | 2025-02-01 | the people's court's J-1 | not my debt |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-01-31 | 895   | B    | 1000 - 100 - 5 |
      | 2025-02-01 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-02 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-03 | 995   | A    | 1000 - 5       |
      | 2026-03-01 | 995   | A    | 1000 - 5       |

  Scenario: A dispute upheld after the 30 days ends the suspension
    Given these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on                  | details     |
      | Wang Fang | the dispute office | dispute    | D-1       | 2025-02-01 | the people's court's J-1 | not my debt |
      | Wang Fang | the dispute office | resolution | D-2       | 2025-04-15 | D-1                      | upheld      |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-03-02 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-03 | 995   | A    | 1000 - 5       |
      | 2025-04-14 | 995   | A    | 1000 - 5       |
      | 2025-04-15 | 895   | B    | 1000 - 100 - 5 |
      | 2028-01-11 | 895   | B    | 1000 - 100 - 5 |
      | 2028-01-12 | 900   | B    | 1000 - 100     |
      | 2032-01-09 | 900   | B    | 1000 - 100     |
      | 2032-01-10 | 1000  | A    | 1000           |

  Scenario: A dispute upheld within the 30 days never suspends the record
    Given these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on                  | details     |
      | Wang Fang | the dispute office | dispute    | D-1       | 2025-02-01 | the people's court's J-1 | not my debt |
      | Wang Fang | the dispute office | resolution | D-2       | 2025-02-20 | D-1                      | upheld      |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-02-20 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-02 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-03 | 895   | B    | 1000 - 100 - 5 |
      | 2025-06-01 | 895   | B    | 1000 - 100 - 5 |

  Scenario: A dispute resolved as removed means the judgment never counted, though it counted as the ledger knew it before
    Given these records are in the ledger:
      | citizen   | authority          | record  | reference | on         | acts on                  | details     |
      | Wang Fang | the dispute office | dispute | D-1       | 2025-02-01 | the people's court's J-1 | not my debt |
    And it is 2026-03-02T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on | details |
      | Wang Fang | the dispute office | resolution | D-2       | 2025-02-20 | D-1     | removed |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-10 | 1000  | A    | 1000      |
      | 2025-01-12 | 995   | A    | 1000 - 5  |
      | 2025-02-19 | 995   | A    | 1000 - 5  |
      | 2025-02-20 | 995   | A    | 1000 - 5  |
      | 2025-06-01 | 995   | A    | 1000 - 5  |
    And under national-v1, as the ledger knew it at 2026-03-01T12:00:00Z, the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-01-10 | 900   | B    | 1000 - 100     |
      | 2025-02-20 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-03 | 995   | A    | 1000 - 5       |

  Scenario: A resolution received after the scores were brought up to date changes them from its date
    Given these records are in the ledger:
      | citizen   | authority          | record  | reference | on         | acts on                  | details     |
      | Wang Fang | the dispute office | dispute | D-1       | 2025-02-01 | the people's court's J-1 | not my debt |
    And the scores have been brought up to date with the ledger
    When the ledger receives these records:
      | citizen   | authority          | record     | reference | on         | acts on | details |
      | Wang Fang | the dispute office | resolution | D-2       | 2025-04-15 | D-1     | upheld  |
    And the scores are brought up to date with the ledger
    Then nothing is rejected
    And under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-03-02 | 895   | B    | 1000 - 100 - 5 |
      | 2025-03-03 | 995   | A    | 1000 - 5       |
      | 2025-04-15 | 895   | B    | 1000 - 100 - 5 |

  Scenario: A disputed degree also stops counting while its dispute stays open past 30 days
    Given these records are in the ledger:
      | citizen   | authority          | record  | reference | on         | acts on              | details                 |
      | Wang Fang | the university     | degree  | U-1       | 2012-07-01 |                      | BSc Physics             |
      | Wang Fang | the dispute office | dispute | D-1       | 2024-06-01 | the university's U-1 | awarded to someone else |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2024-06-01 | 1010  | A    | 1000 + 10 |
      | 2024-06-30 | 1010  | A    | 1000 + 10 |
      | 2024-07-01 | 1000  | A    | 1000      |

  Scenario: A revocation removed on dispute never counted, and the degree counts as if never revoked
    Given these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on              | details                  |
      | Wang Fang | the university     | degree     | U-1       | 2012-07-01 |                      | BSc Physics              |
      | Wang Fang | the university     | revocation | U-2       | 2024-09-01 | U-1                  | thesis found plagiarised |
      | Wang Fang | the dispute office | dispute    | D-1       | 2024-09-10 | the university's U-2 | the thesis is her own    |
      | Wang Fang | the dispute office | resolution | D-2       | 2024-10-01 | D-1                  | removed                  |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2024-08-31 | 1010  | A    | 1000 + 10      |
      | 2024-09-01 | 1010  | A    | 1000 + 10      |
      | 2024-10-01 | 1010  | A    | 1000 + 10      |
      | 2025-01-10 | 910   | B    | 1000 + 10 - 100 |
