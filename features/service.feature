Feature: Authorities and lenders use the ledger through its HTTP service
  Issuing authorities append records through the service with a token that acts for
  them alone; a lender reads scores with a reader's token. What the service answers is
  what the ledger holds.

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record    | reference | on         | amount | acts on |
      | Wang Fang | the civil registry | enrolment | CR-1      | 2008-03-07 |        |         |
    And the traffic police hold a service token
    And a lender holds a reader token

  Scenario: The traffic police append a fine through the service
    When the traffic police send a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1 through the service
    Then the service answers that 1 record was appended
    And the history of Wang Fang ends with TP-1

  Scenario: Sending the same fine again is a duplicate, not a second fine
    When the traffic police send a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1 through the service
    And the traffic police send a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1 through the service
    Then the service answers that the record was already in the ledger at the same position

  Scenario: The traffic police cannot append for the tax bureau
    When the traffic police send tax arrears of 300.00 for Wang Fang on 2025-01-15 under reference TX-1 through the service
    Then the service refuses with status 403
    And the history of Wang Fang ends with CR-1

  Scenario: A lender reads a score through the service
    Given the traffic police sent a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1 through the service
    And the scores have been brought up to date with the ledger
    When the lender reads the score of Wang Fang as of 2025-06-01 through the service
    Then the lender is told 995 in band A under national-v1

  Scenario: A lender may not read a citizen's history
    When the lender asks the service for the history of Wang Fang
    Then the service refuses with status 403
