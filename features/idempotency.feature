Feature: Idempotency
  An authority and its reference identify a record across the whole ledger, so a feed
  can be sent again safely. The same record sent again is a duplicate: nothing is
  written, and the ledger names the position where the original was written. The
  same reference with different content is a conflict and is rejected: a record is
  never changed, only acted on by a later record.

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the civil registry | enrolment    | CR-1      | 2008-03-07 |        |
      | Li Wei    | the civil registry | enrolment    | CR-2      | 2003-11-30 |        |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |
      | Li Wei    | the traffic police | traffic fine | TP-LI     | 2025-01-12 | 150.00 |

  Scenario: The same record sent again is a duplicate of the original and writes nothing
    When the traffic police record a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1
    Then line 1 is a duplicate of TP-1, at the position it was written
    And nothing is rejected
    And nothing is written to the ledger

  Scenario: An amount written without its cents is the same record
    When the traffic police record a fine of 200 for Wang Fang on 2025-01-10 under reference TP-1
    Then line 1 is a duplicate of TP-1, at the position it was written
    And nothing is rejected
    And nothing is written to the ledger
    And the history of Wang Fang is:
      | record       | reference | amount |
      | enrolment    | CR-1      |        |
      | traffic fine | TP-1      | 200.00 |

  Scenario: A whole feed sent again is all duplicates and writes nothing the second time
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 80.00  |         |
      | Wang Fang | the traffic police | settlement   | TP-3      | 2025-04-20 | 80.00  | TP-2    |
      | Li Wei    | the traffic police | traffic fine | TP-4      | 2025-04-02 | 60.00  |         |
    And the ledger receives the same records again
    Then every line is a duplicate of its original, at the position it was written
    And nothing is rejected
    And nothing is written to the ledger

  Scenario: The same record twice in one feed is written once
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 80.00  |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 80.00  |
    Then 1 record is appended
    And line 2 is a duplicate of line 1, at the position that line was given
    And nothing is rejected
    And the history of Wang Fang has gained TP-2 and nothing else

  Scenario: A record sent again to a restarted ledger is still a duplicate
    When the ledger is restarted on the same store
    And the traffic police record a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1
    Then line 1 is a duplicate of TP-1, at the position it was written
    And nothing is written to the ledger

  Scenario: Records sent through two ledgers on the same store are written once
    Given a second ledger is open on the same store
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 80.00  |         |
      | Wang Fang | the traffic police | settlement   | TP-3      | 2025-04-20 | 80.00  | TP-2    |
    And the second ledger receives the same records
    Then every line is a duplicate of its original, at the position it was written
    And nothing is rejected
    And nothing is written to the ledger

  Scenario: The same reference with a different amount is a conflict and writes nothing
    When the traffic police record a fine of 250.00 for Wang Fang on 2025-01-10 under reference TP-1
    Then line 1 is the only one rejected, for its reference: "already names a stored record with different content; a record is never changed"
    And there are no duplicates
    And nothing is written to the ledger
    And the history of Wang Fang is:
      | record       | reference | on         | amount |
      | enrolment    | CR-1      | 2008-03-07 |        |
      | traffic fine | TP-1      | 2025-01-10 | 200.00 |

  Scenario Outline: Any other content under a stored reference is a conflict
    When the ledger receives these records:
      | citizen   | authority          | record   | reference | on   | amount   |
      | <citizen> | the traffic police | <record> | TP-1      | <on> | <amount> |
    Then line 1 is the only one rejected, for its reference: "already names a stored record with different content; a record is never changed"
    And there are no duplicates
    And nothing is written to the ledger

    Examples:
      | change          | citizen   | record       | on         | amount |
      | another day     | Wang Fang | traffic fine | 2025-01-11 | 200.00 |
      | another citizen | Li Wei    | traffic fine | 2025-01-10 | 200.00 |

  Scenario: Another citizen's reference with other content is a conflict, not a new record
    When the traffic police record a fine of 150.00 for Wang Fang on 2025-01-12 under reference TP-LI
    Then line 1 is the only one rejected, for its reference: "already names a stored record with different content; a record is never changed"
    And nothing is written to the ledger

  Scenario: A conflict within one feed names the earlier line
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 80.00  |
      | Wang Fang | the traffic police | traffic fine | TP-2      | 2025-04-01 | 90.00  |
    Then line 2 is the only one rejected, for its reference: "already names line 1 with different content; a record is never changed"
    And 1 record is appended
    And there are no duplicates
    And the history of Wang Fang has gained TP-2 and nothing else

  Scenario: The same reference from another authority is another record
    When the ledger receives these records:
      | citizen   | authority      | record      | reference | on         | amount |
      | Wang Fang | the tax bureau | tax arrears | TP-1      | 2025-01-10 | 200.00 |
    Then nothing is rejected
    And there are no duplicates
    And 1 record is appended
    And the history of Wang Fang is:
      | authority          | record       | reference |
      | the civil registry | enrolment    | CR-1      |
      | the traffic police | traffic fine | TP-1      |
      | the tax bureau     | tax arrears  | TP-1      |
