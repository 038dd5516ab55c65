Feature: Decisions for relying parties, and the citizen's own file
  A bank, an employer or a licensing board asks for a decision for a purpose it is
  registered for. The decision follows a rule that is data, reads only the kinds of
  record its purpose allows, is recorded on the citizen's file, and comes with its
  principal reasons; a refusal comes with the notice the citizen is owed. The citizen
  reads their own file, sees who looked, and disputes what is wrong.

  Under finance-v1 (base 700) Wang Fang's judgment default costs 150 points, and each
  tax payment on time adds 10. mortgage-v1 approves from 720, refers from 660, and
  refuses while a judgment default counts.

  Background:
    Given the authorities are registered
    And it is 2026-03-01T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record           | reference | on         | amount  |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |         |
      | Li Wei    | the civil registry | enrolment        | CR-2      | 2001-11-23 |         |
      | Wang Fang | the people's court | judgment default | J-1       | 2025-01-10 | 8000.00 |
      | Wang Fang | the traffic police | traffic fine     | TP-1      | 2025-06-01 | 200.00  |
      | Li Wei    | the tax bureau     | tax paid on time | TX-1      | 2025-04-01 | 900.00  |
      | Li Wei    | the tax bureau     | tax paid on time | TX-2      | 2025-05-01 | 900.00  |
    And the bank is registered as a relying party for mortgage

  Scenario: The bank's mortgage is approved for one citizen and refused for another, with reasons
    When the bank asks for a mortgage decision about Li Wei
    Then the decision is approve with a score of 720 under finance-v1
    And the decision carries no notice
    When the bank asks for a mortgage decision about Wang Fang
    Then the decision is deny with a score of 550 under finance-v1
    And the first reason is the people's court's J-1 at -150 points
    And the notice names the people's court as the source and the right to dispute
    And the traffic fine is not among the reasons
    And the file of Wang Fang shows 1 decision by the bank

  Scenario: A rule whose policy counts a kind its purpose may not use is refused when loaded
    When a rule for mortgage under national-v1 is loaded
    Then it is refused naming criminal_conviction

  Scenario: A party without the purpose is refused with 403, and nothing is recorded
    Given the medical board is registered as a relying party for licensed_employment
    When the medical board asks over HTTP for a mortgage decision about Wang Fang
    Then the answer is 403
    And nothing was recorded on the file of Wang Fang

  Scenario: A citizen reads their own file and sees who looked
    Given the bank read the mortgage score of Wang Fang over HTTP
    And the bank asked over HTTP for a mortgage decision about Wang Fang
    When Wang Fang reads her own file over HTTP
    Then it shows an inquiry and a decision by the bank, for mortgage
    And it lists J-1 against her, with how to dispute it

  Scenario: A citizen disputes a record, and it stops counting on day 31 unresolved
    When Wang Fang disputes the people's court's J-1 over HTTP
    Then under finance-v1 her own file shows a score of 550 on 2026-03-30
    And under finance-v1 her own file shows a score of 700 on 2026-03-31

  Scenario: A decision replayed as known at its time gives the same outcome and reasons
    Given the bank asked for a mortgage decision about Wang Fang
    And it is 2026-03-05T05:00:00Z
    And these records are in the ledger:
      | citizen   | authority          | record         | reference | on         | acts on | details             |
      | Wang Fang | the people's court | vacating order | V-1       | 2026-03-04 | J-1     | set aside on appeal |
    When the bank asks for a mortgage decision about Wang Fang
    Then the decision is refer with a score of 700 under finance-v1
    When the first decision is replayed as known at its time
    Then the replay is the first decision, outcome and reasons alike
