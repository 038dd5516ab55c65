Feature: Appending records
  Registered authorities send the ledger their records about citizens, a feed at a
  time. Every valid record is written to the history of the citizen it concerns, in
  the order the ledger received it, and a later record in a feed may act on an
  earlier one.

  Background:
    Given the authorities are registered

  Scenario: A citizen is enrolled and her records follow in the order received
    When the ledger receives these records:
      | citizen   | authority          | record           | reference | on         | amount  | details     |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |         |             |
      | Wang Fang | the traffic police | traffic fine     | TP-1      | 2025-01-10 | 200.00  |             |
      | Wang Fang | the tax bureau     | tax paid on time | TB-1      | 2025-04-30 | 1200.00 |             |
      | Wang Fang | the university     | degree           | U-1       | 2012-07-01 |         | BSc Physics |
    Then nothing is rejected
    And 4 records are appended
    And each appended line is given the position of its record in the history of Wang Fang
    And the history of Wang Fang is:
      | record           | reference | authority          | on         | amount  | details     |
      | enrolment        | CR-1      | the civil registry | 2008-03-07 |         |             |
      | traffic fine     | TP-1      | the traffic police | 2025-01-10 | 200.00  |             |
      | tax paid on time | TB-1      | the tax bureau     | 2025-04-30 | 1200.00 |             |
      | degree           | U-1       | the university     | 2012-07-01 |         | BSc Physics |

  Scenario: An authority records a fine for an enrolled citizen
    Given these records are in the ledger:
      | citizen   | authority          | record    | reference | on         |
      | Wang Fang | the civil registry | enrolment | CR-1      | 2008-03-07 |
    When the traffic police record a fine of 200.00 for Wang Fang on 2025-01-10 under reference TP-1
    Then nothing is rejected
    And 1 record is appended
    And the history of Wang Fang is:
      | record       | reference | authority          | on         | amount |
      | enrolment    | CR-1      | the civil registry | 2008-03-07 |        |
      | traffic fine | TP-1      | the traffic police | 2025-01-10 | 200.00 |

  Scenario: A later line settles a fine recorded earlier in the same feed
    Given these records are in the ledger:
      | citizen   | authority          | record    | reference | on         |
      | Wang Fang | the civil registry | enrolment | CR-1      | 2008-03-07 |
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |         |
      | Wang Fang | the traffic police | settlement   | TP-2      | 2025-02-01 | 200.00 | TP-1    |
    Then nothing is rejected
    And 2 records are appended
    And each appended line is given the position of its record in the history of Wang Fang
    And the history of Wang Fang is:
      | record       | reference | on         | amount | acts on |
      | enrolment    | CR-1      | 2008-03-07 |        |         |
      | traffic fine | TP-1      | 2025-01-10 | 200.00 |         |
      | settlement   | TP-2      | 2025-02-01 | 200.00 | TP-1    |

  Scenario: Records act on earlier records: settled, repaired, disputed, resolved and vacated
    Given these records are in the ledger:
      | citizen   | authority          | record           | reference | on         | amount  |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |         |
      | Wang Fang | the tax bureau     | tax arrears      | TX-1      | 2024-05-01 | 300.00  |
      | Wang Fang | the people's court | judgment default | J-1       | 2024-06-01 | 5000.00 |
    When the ledger receives these records:
      | citizen   | authority                | record         | reference | on         | amount | acts on                  | details             |
      | Wang Fang | the tax bureau           | settlement     | TX-2      | 2024-06-15 | 300.00 | TX-1                     |                     |
      | Wang Fang | the credit repair office | credit repair  | R-1       | 2025-01-02 |        | the tax bureau's TX-1    |                     |
      | Wang Fang | the dispute office       | dispute        | D-1       | 2024-07-01 |        | the people's court's J-1 | not my debt         |
      | Wang Fang | the dispute office       | resolution     | D-2       | 2024-08-01 |        | D-1                      | upheld              |
      | Wang Fang | the people's court       | vacating order | V-1       | 2024-09-01 |        | J-1                      | set aside on appeal |
    Then nothing is rejected
    And 5 records are appended
    And the history of Wang Fang is:
      | record           | reference | authority                | acts on                  | details             |
      | enrolment        | CR-1      | the civil registry       |                          |                     |
      | tax arrears      | TX-1      | the tax bureau           |                          |                     |
      | judgment default | J-1       | the people's court       |                          |                     |
      | settlement       | TX-2      | the tax bureau           | TX-1                     |                     |
      | credit repair    | R-1       | the credit repair office | the tax bureau's TX-1    |                     |
      | dispute          | D-1       | the dispute office       | the people's court's J-1 | not my debt         |
      | resolution       | D-2       | the dispute office       | D-1                      | upheld              |
      | vacating order   | V-1       | the people's court       | J-1                      | set aside on appeal |

  Scenario: One feed enrols several citizens and each history holds only their own records
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the civil registry | enrolment    | CR-1      | 2008-03-07 |        |
      | Li Wei    | the civil registry | enrolment    | CR-2      | 2003-11-30 |        |
      | Li Wei    | the bank           | loan default | B-1       | 2024-02-01 | 900.00 |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |
      | Li Wei    | the traffic police | traffic fine | TP-2      | 2025-01-11 | 50.00  |
    Then nothing is rejected
    And 5 records are appended
    And the history of Wang Fang is:
      | citizen   | record       | reference |
      | Wang Fang | enrolment    | CR-1      |
      | Wang Fang | traffic fine | TP-1      |
    And the history of Li Wei is:
      | citizen | record       | reference |
      | Li Wei  | enrolment    | CR-2      |
      | Li Wei  | loan default | B-1       |
      | Li Wei  | traffic fine | TP-2      |

  Scenario: An identity number ending in a lower-case x is kept with an upper-case X
    When the ledger receives these records:
      | citizen            | authority          | record       | reference | on         | amount |
      | 11010519900307101x | the civil registry | enrolment    | CR-1      | 2008-03-07 |        |
      | 11010519900307101X | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |
    Then nothing is rejected
    And 2 records are appended
    And the history of 11010519900307101X is:
      | citizen            | record       | reference |
      | 11010519900307101X | enrolment    | CR-1      |
      | 11010519900307101X | traffic fine | TP-1      |

  Scenario: The ledger's today is the day in China Standard Time
    Given these records are in the ledger:
      | citizen   | authority          | record    | reference | on         |
      | Wang Fang | the civil registry | enrolment | CR-1      | 2008-03-07 |
    And it is 2026-03-01T16:30:00Z
    When the traffic police record a fine of 200.00 for Wang Fang on 2026-03-02 under reference TP-1
    Then nothing is rejected
    And 1 record is appended
    And the history of Wang Fang has gained TP-1 and nothing else
