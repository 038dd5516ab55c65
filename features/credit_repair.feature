Feature: Credit repair
  Once an infraction is settled, a residual keeps counting against the citizen for a
  while. The credit repair office may repair a settled infraction: its residual ends
  on the repair date. Repair never touches the points counted while the infraction was
  open, and it leaves the citizen's other records as they were.

  Under national-v1, Wang Fang's tax arrears cost 30 points while open and 10 for
  1 year after settlement (until 2025-03-01); her loan default costs 50 points while
  open and 25 for 2 years after settlement (until 2026-06-01).

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount   | acts on |
      | Wang Fang | the civil registry | enrolment    | CR-1      | 2008-03-07 |          |         |
      | Wang Fang | the bank           | loan default | B-1       | 2023-06-01 | 20000.00 |         |
      | Wang Fang | the tax bureau     | tax arrears  | TX-1      | 2024-01-15 | 3000.00  |         |
      | Wang Fang | the tax bureau     | settlement   | TX-2      | 2024-03-01 | 3000.00  | TX-1    |
      | Wang Fang | the bank           | settlement   | B-2       | 2024-06-01 | 20000.00 | B-1     |

  Scenario: Without a repair, each settled infraction leaves its full residual
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2024-01-14 | 950   | B    | 1000 - 50      |
      | 2024-02-29 | 920   | B    | 1000 - 30 - 50 |
      | 2024-03-01 | 940   | B    | 1000 - 10 - 50 |
      | 2024-06-01 | 965   | A    | 1000 - 10 - 25 |
      | 2025-02-28 | 965   | A    | 1000 - 10 - 25 |
      | 2025-03-01 | 975   | A    | 1000 - 25      |
      | 2026-05-31 | 975   | A    | 1000 - 25      |
      | 2026-06-01 | 1000  | A    | 1000           |

  Scenario: A repair ends the residual of the repaired infraction on the repair date
    Given these records are in the ledger:
      | citizen   | authority                | record        | reference | on         | acts on               |
      | Wang Fang | the credit repair office | credit repair | R-1       | 2024-09-01 | the tax bureau's TX-1 |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2024-02-29 | 920   | B    | 1000 - 30 - 50 |
      | 2024-03-01 | 940   | B    | 1000 - 10 - 50 |
      | 2024-08-31 | 965   | A    | 1000 - 10 - 25 |
      | 2024-09-01 | 975   | A    | 1000 - 25      |
      | 2026-05-31 | 975   | A    | 1000 - 25      |
      | 2026-06-01 | 1000  | A    | 1000           |

  Scenario: A repair on the day of settlement leaves no residual at all
    Given these records are in the ledger:
      | citizen   | authority                | record        | reference | on         | acts on         |
      | Wang Fang | the credit repair office | credit repair | R-1       | 2024-06-01 | the bank's B-1  |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2024-05-31 | 940   | B    | 1000 - 10 - 50 |
      | 2024-06-01 | 990   | A    | 1000 - 10      |
      | 2025-03-01 | 1000  | A    | 1000           |

  Scenario: A repair after the residual has run out changes nothing
    Given these records are in the ledger:
      | citizen   | authority                | record        | reference | on         | acts on               |
      | Wang Fang | the credit repair office | credit repair | R-1       | 2025-06-01 | the tax bureau's TX-1 |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2025-02-28 | 965   | A    | 1000 - 10 - 25 |
      | 2025-03-01 | 975   | A    | 1000 - 25      |
      | 2025-06-01 | 975   | A    | 1000 - 25      |

  Scenario: As the ledger knew it before the repair was recorded, the residual still counted
    Given it is 2026-03-01T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority                | record        | reference | on         | acts on               |
      | Wang Fang | the credit repair office | credit repair | R-1       | 2024-09-01 | the tax bureau's TX-1 |
    When the scores are brought up to date with the ledger
    Then under national-v1, as the ledger knew it at 2026-03-01T04:30:00Z, the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2024-09-01 | 965   | A    | 1000 - 10 - 25 |
      | 2025-02-28 | 965   | A    | 1000 - 10 - 25 |
    And under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2024-09-01 | 975   | A    | 1000 - 25 |
