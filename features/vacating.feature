Feature: Vacated records
  A court may vacate an infraction. A vacated record never counted: not from its own
  date, not on any date before the court's order, and not in any answer the ledger
  gives once the order is recorded, under every policy. What the ledger said before
  the order was recorded can still be reproduced: asked as it knew things at a time
  before the order was recorded, the record counts as it did then.

  Wang Fang's judgment default costs 100 points under national-v1 and her traffic
  fine 5; under finance-v1, which starts at 700, the judgment default costs 150.

  Background:
    Given the authorities are registered
    And it is 2026-03-01T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record           | reference | on         | amount  |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |         |
      | Wang Fang | the people's court | judgment default | J-1       | 2025-01-10 | 8000.00 |
      | Wang Fang | the traffic police | traffic fine     | TP-1      | 2025-06-01 | 200.00  |

  Scenario: A vacated judgment default never counted, on any date, even before the order's date
    Given it is 2026-03-02T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record         | reference | on         | acts on | details             |
      | Wang Fang | the people's court | vacating order | V-1       | 2025-09-01 | J-1     | set aside on appeal |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-09 | 1000  | A    | 1000      |
      | 2025-01-10 | 1000  | A    | 1000      |
      | 2025-05-31 | 1000  | A    | 1000      |
      | 2025-06-01 | 995   | A    | 1000 - 5  |
      | 2025-08-31 | 995   | A    | 1000 - 5  |
      | 2025-09-01 | 995   | A    | 1000 - 5  |
      | 2028-06-01 | 1000  | A    | 1000      |
    And under finance-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-10 | 700   | fair | 700       |
      | 2025-08-31 | 700   | fair | 700       |
      | 2025-09-01 | 700   | fair | 700       |

  Scenario: As the ledger knew it before the order was recorded, the judgment default counted
    Given it is 2026-03-02T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record         | reference | on         | acts on | details             |
      | Wang Fang | the people's court | vacating order | V-1       | 2025-09-01 | J-1     | set aside on appeal |
    When the scores are brought up to date with the ledger
    Then under national-v1, as the ledger knew it at 2026-03-01T12:00:00Z, the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-01-09 | 1000  | A    | 1000           |
      | 2025-01-10 | 900   | B    | 1000 - 100     |
      | 2025-06-01 | 895   | B    | 1000 - 100 - 5 |
      | 2025-09-01 | 895   | B    | 1000 - 100 - 5 |
    And under national-v1, as the ledger knew it at 2026-03-02T12:00:00Z, the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-10 | 1000  | A    | 1000      |
      | 2025-06-01 | 995   | A    | 1000 - 5  |
      | 2025-09-01 | 995   | A    | 1000 - 5  |

  Scenario: An order received after the scores were brought up to date takes the record out of every date
    Given the scores have been brought up to date with the ledger
    When the ledger receives these records:
      | citizen   | authority          | record         | reference | on         | acts on | details             |
      | Wang Fang | the people's court | vacating order | V-1       | 2025-09-01 | J-1     | set aside on appeal |
    And the scores are brought up to date with the ledger
    Then nothing is rejected
    And under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-10 | 1000  | A    | 1000      |
      | 2025-06-01 | 995   | A    | 1000 - 5  |
      | 2025-09-01 | 995   | A    | 1000 - 5  |

  Scenario: A vacated infraction that had been settled leaves no residual either
    Given these records are in the ledger:
      | citizen   | authority          | record         | reference | on         | amount  | acts on               | details             |
      | Wang Fang | the tax bureau     | tax arrears    | TX-1      | 2024-01-15 | 3000.00 |                       |                     |
      | Wang Fang | the tax bureau     | settlement     | TX-2      | 2024-03-01 | 3000.00 | TX-1                  |                     |
      | Wang Fang | the people's court | vacating order | V-2       | 2024-06-01 |         | the tax bureau's TX-1 | assessed in error   |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2024-01-15 | 1000  | A    | 1000      |
      | 2024-03-01 | 1000  | A    | 1000      |
      | 2024-06-01 | 1000  | A    | 1000      |
      | 2025-01-10 | 900   | B    | 1000 - 100 |
