Feature: A citizen's history
  Every record about a citizen is kept in the order the ledger received it, with its
  position in the ledger and the time it was recorded. Nothing stored is ever changed,
  so the history can be read as it stands now or as the ledger knew it at any
  earlier time.

  Background:
    Given the authorities are registered
    And it is 2026-03-01T01:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the civil registry | enrolment    | CR-1      | 2008-03-07 |        |
      | Li Wei    | the civil registry | enrolment    | CR-2      | 2003-11-30 |        |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |

  Scenario: The history shows every record in the order received, with what it acts on
    Given it is 2026-03-01T02:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount | acts on                   | details     |
      | Wang Fang | the university     | degree       | U-1       | 2012-07-01 |        |                           | BSc Physics |
      | Li Wei    | the bank           | loan default | B-1       | 2024-02-01 | 900.00 |                           |             |
      | Wang Fang | the dispute office | dispute      | D-1       | 2025-01-20 |        | the traffic police's TP-1 | not my car  |
      | Wang Fang | the dispute office | resolution   | D-2       | 2025-02-20 |        | D-1                       | upheld      |
    And it is 2026-03-01T03:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | settlement | TP-2      | 2025-03-01 | 200.00 | TP-1    |
    When the history of Wang Fang is read
    Then it shows:
      | record       | reference | authority          | on         | amount | acts on                   | details     |
      | enrolment    | CR-1      | the civil registry | 2008-03-07 |        |                           |             |
      | traffic fine | TP-1      | the traffic police | 2025-01-10 | 200.00 |                           |             |
      | degree       | U-1       | the university     | 2012-07-01 |        |                           | BSc Physics |
      | dispute      | D-1       | the dispute office | 2025-01-20 |        | the traffic police's TP-1 | not my car  |
      | resolution   | D-2       | the dispute office | 2025-02-20 |        | D-1                       | upheld      |
      | settlement   | TP-2      | the traffic police | 2025-03-01 | 200.00 | TP-1                      |             |
    And its positions rise in the order received
    And its recording times never go back
    And TP-2 was recorded within a minute of 2026-03-01T03:00:00Z
    And U-1 was recorded within a minute of 2026-03-01T02:00:00Z

  Scenario: The history as known at an earlier time hides what was recorded later
    Given it is 2026-03-05T09:00:00Z
    When the traffic police record that Wang Fang settled TP-1 with 200.00 on 2026-03-04 under reference TP-2
    And the history of Wang Fang is read as known at 2026-03-02T00:00:00Z
    Then it shows:
      | record       | reference |
      | enrolment    | CR-1      |
      | traffic fine | TP-1      |

  Scenario: The history now shows what was recorded after an earlier time
    Given it is 2026-03-05T09:00:00Z
    When the traffic police record that Wang Fang settled TP-1 with 200.00 on 2026-03-04 under reference TP-2
    And the history of Wang Fang is read
    Then it shows:
      | record       | reference | acts on |
      | enrolment    | CR-1      |         |
      | traffic fine | TP-1      |         |
      | settlement   | TP-2      | TP-1    |

  Scenario: A time in China Standard Time is the same moment as in UTC
    Given it is 2026-03-05T09:00:00Z
    When the traffic police record that Wang Fang settled TP-1 with 200.00 on 2026-03-04 under reference TP-2
    And the history of Wang Fang is read as known at 2026-03-05T16:59:00+08:00
    Then it shows:
      | reference |
      | CR-1      |
      | TP-1      |

  Scenario: A record is known from the moment it was recorded
    Given it is 2026-03-05T09:00:00Z
    When the traffic police record a fine of 80.00 for Wang Fang on 2026-03-04 under reference TP-3
    And the history of Wang Fang is read as known when TP-3 was recorded
    Then it ends with TP-3

  Scenario: A second before a record was recorded the ledger did not know it
    Given it is 2026-03-05T09:00:00Z
    When the traffic police record a fine of 80.00 for Wang Fang on 2026-03-04 under reference TP-3
    And the history of Wang Fang is read as known a second before TP-3 was recorded
    Then it ends with TP-1

  Scenario: Before her enrolment was recorded the ledger knew nothing of her
    When the history of Wang Fang is read as known at 2026-03-01T00:59:59Z
    Then it is empty

  Scenario: Rejected records never appear in the history
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the traffic police | traffic fine | TP-3      | 2025-06-01 | 5.001  |
      | Wang Fang | the traffic police | tax arrears  | TP-4      | 2025-06-01 | 5.00   |
      | Wang Fang | the traffic police | traffic fine | TP-5      | 2025-06-01 | 5.00   |
    And the history of Wang Fang is read
    Then it shows:
      | record       | reference |
      | enrolment    | CR-1      |
      | traffic fine | TP-1      |
      | traffic fine | TP-5      |

  Scenario: A restarted ledger shows the same history
    When the ledger is restarted on the same store
    And the history of Wang Fang is read
    Then it shows:
      | record       | reference | on         | amount |
      | enrolment    | CR-1      | 2008-03-07 |        |
      | traffic fine | TP-1      | 2025-01-10 | 200.00 |

  Scenario: A citizen the ledger has never heard of has no history
    When the history of Zhang Min is asked for
    Then it is refused for its citizen: "440305200002290184 has no records in the ledger"
